package jobs

import (
	"fmt"
	"math"

	"github.com/exo-worker/worker/internal/schedule"
)

// Settings are what every job has under jobs.<name> in the configuration: when it runs, how, and how far one
// run may reach. A job's configuration embeds them (`yaml:",inline"`) next to its own keys.
type Settings struct {
	// Schedule is when `worker serve` runs the job (internal/schedule: cron, CRON_TZ=, @every); empty = only
	// when triggered.
	Schedule string `yaml:"schedule,omitempty"`
	// OnSync makes `worker serve` run the job as soon as a directory sync cycle finishes (it polls Graph's
	// organization.onPremisesLastSyncDateTime once a minute), beside or instead of Schedule.
	OnSync bool `yaml:"on_sync,omitempty"`
	// Mode is report, dry-run or remediate.
	Mode Mode `yaml:"mode"`
	// MaxChanges and MaxChangePercent are the blast radius: a run that would change more objects, or a
	// larger share of the objects in scope, stops before its first write until a person reruns it with
	// --force. Both are finite for every job.
	MaxChanges       int     `yaml:"max_changes"`
	MaxChangePercent float64 `yaml:"max_change_percent"`
}

// Common implements Config for every configuration that embeds Settings.
func (s *Settings) Common() *Settings { return s }

// The default blast radius of every job: generous enough for a day's new objects, small enough that a
// mistake (or a first run on a tenant never cleaned) stops for review.
const (
	DefaultMaxChanges       = 500
	DefaultMaxChangePercent = 20
)

// DefaultSettings are the settings a job of kind k runs with when the configuration does not say: a
// remediation job remediates, an audit reports, both within the default blast radius.
func DefaultSettings(k Kind) Settings {
	s := Settings{Mode: ModeRemediate, MaxChanges: DefaultMaxChanges, MaxChangePercent: DefaultMaxChangePercent}
	if k == KindAudit {
		s.Mode = ModeReport
	}
	return s
}

// Config is a job's typed configuration: a struct that embeds Settings and adds the job's own keys with
// yaml tags. config/ decodes jobs.<name> into the value Definition.Defaults returns, so every key has its
// default before the file is read and an unknown key is an error naming its path.
type Config interface {
	// Common returns the settings every job has (promoted from the embedded Settings).
	Common() *Settings
	// Check returns the problems of the job's own keys; Field is the key below jobs.<name> ("target").
	Check() []FieldError
}

// RequiredChecker is implemented by a job configuration with keys that must be set once the configuration
// names the job (mailbox-license's group_id: no default can name a group of the tenant). A job left on its
// defaults is exempt: `worker jobs` lists it, and it refuses to plan, saying what to set.
type RequiredChecker interface {
	CheckRequired() []FieldError
}

// FieldError is one problem of a job's configuration.
type FieldError struct {
	// Field is the key path below jobs.<name>: "target", "max_changes".
	Field   string
	Message string
}

func (e FieldError) Error() string { return e.Field + ": " + e.Message }

// check validates the settings every job has; k is the job's kind.
func (s *Settings) check(k Kind) []FieldError {
	var out []FieldError
	add := func(f, format string, a ...any) { out = append(out, FieldError{f, fmt.Sprintf(format, a...)}) }
	if s.Schedule != "" {
		if _, err := schedule.Parse(s.Schedule); err != nil {
			add("schedule", "%q is not a schedule: %v", s.Schedule, err)
		}
	}
	switch m, err := ParseMode(string(s.Mode)); {
	case err != nil:
		add("mode", "%v", err)
	case k == KindAudit && m != ModeReport:
		add("mode", "%q: an audit only reports; use report (or leave mode out)", s.Mode)
	default:
		s.Mode = m
	}
	if s.MaxChanges < 1 {
		add("max_changes", "%d: use 1 or more, the most objects one run may change (a person lifts it for one run with `worker run --force`)", s.MaxChanges)
	}
	if math.IsNaN(s.MaxChangePercent) || s.MaxChangePercent <= 0 || s.MaxChangePercent > 100 {
		add("max_change_percent", "%v: use more than 0 and at most 100, the largest share of in-scope objects one run may change", s.MaxChangePercent)
	}
	return out
}

// Definition is how a job enters the library (jobs/library lists them): its name and kind, its
// configuration with defaults, and how to build it from a checked configuration. Make one with Define.
type Definition struct {
	Name string
	Kind Kind
	// Defaults returns a new configuration holding the job's defaults.
	Defaults func() Config
	// New builds the job from its checked configuration.
	New func(Config) (Job, error)
}

// Define makes a Definition from a job's typed configuration: defaults returns it filled with the job's
// defaults (Settings from DefaultSettings), build makes the job from it.
//
//	var Definition = jobs.Define(Name, jobs.KindRemediate,
//		func() *Config { return &Config{Settings: jobs.DefaultSettings(jobs.KindRemediate), Target: "Never"} },
//		func(c *Config) (jobs.Job, error) { return New(c.Target) })
func Define[C Config](name string, kind Kind, defaults func() C, build func(C) (Job, error)) Definition {
	return Definition{
		Name:     name,
		Kind:     kind,
		Defaults: func() Config { return defaults() },
		New: func(c Config) (Job, error) {
			tc, ok := c.(C)
			if !ok {
				return nil, fmt.Errorf("jobs: %s: configuration of type %T, want %T", name, c, *new(C))
			}
			return build(tc)
		},
	}
}
