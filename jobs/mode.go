package jobs

import "fmt"

// Mode is how a run treats the tenant.
type Mode string

// The three modes of the safety model.
const (
	ModeReport    Mode = "report"    // findings only, changes are listed but never applied
	ModeDryRun    Mode = "dry-run"   // the plan printed old → new, zero writes
	ModeRemediate Mode = "remediate" // the plan applied, then read back
)

// ParseMode accepts the three mode names.
func ParseMode(s string) (Mode, error) {
	switch Mode(s) {
	case ModeReport, ModeDryRun, ModeRemediate:
		return Mode(s), nil
	}
	return "", fmt.Errorf("mode %q is not one of report, dry-run, remediate", s)
}
