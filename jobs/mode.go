package jobs

import (
	"fmt"
	"strings"
)

// Mode is how a run treats the tenant.
type Mode string

// The three modes of the safety model.
const (
	ModeReport    Mode = "report"    // findings only, changes are listed but never applied
	ModeDryRun    Mode = "dry-run"   // the plan printed old → new, zero writes
	ModeRemediate Mode = "remediate" // the plan applied, then read back
)

// Modes lists the modes, safest first.
var Modes = []Mode{ModeReport, ModeDryRun, ModeRemediate}

// ParseMode accepts the three mode names, in any case.
func ParseMode(s string) (Mode, error) {
	m := Mode(strings.ToLower(strings.TrimSpace(s)))
	switch m {
	case ModeReport, ModeDryRun, ModeRemediate:
		return m, nil
	}
	return "", fmt.Errorf("%q is not a mode; use one of report, dry-run, remediate", s)
}
