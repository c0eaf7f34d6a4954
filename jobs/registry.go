package jobs

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// Library is every job the worker knows (jobs/library builds it from one line per job), checked when the
// worker starts: names are unique, and each job's declaration — built from its defaults — is one the
// executor can run (Description.Validate, with the table of parameters directory sync owns). config/ asks
// it how to read and check jobs.<name>.
type Library struct {
	defs      map[string]Definition
	names     []string
	syncOwned SyncOwnedFunc
}

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)

// NewLibrary registers the definitions. syncOwned is exo.SyncOwned (nil: not checked, for tests of other
// things). A job that fails registration is an error naming the job and every reason.
func NewLibrary(syncOwned SyncOwnedFunc, defs ...Definition) (*Library, error) {
	l := &Library{defs: map[string]Definition{}, syncOwned: syncOwned}
	var problems []string
	for _, d := range defs {
		if _, dup := l.defs[d.Name]; dup {
			problems = append(problems, fmt.Sprintf("%q is registered twice", d.Name))
			continue
		}
		if !nameRE.MatchString(d.Name) {
			problems = append(problems, fmt.Sprintf("%q is not a job name (lower case, digits and dashes)", d.Name))
			continue
		}
		if d.Defaults == nil || d.New == nil {
			problems = append(problems, fmt.Sprintf("%s: a definition needs Defaults and New (use jobs.Define)", d.Name))
			continue
		}
		l.defs[d.Name] = d
		l.names = append(l.names, d.Name)
		if _, err := l.build(d, d.Defaults()); err != nil {
			problems = append(problems, err.Error())
		}
	}
	sort.Strings(l.names)
	if len(problems) > 0 {
		return nil, fmt.Errorf("job library: %s", strings.Join(problems, "; "))
	}
	return l, nil
}

// build makes the job from c and checks its declaration.
func (l *Library) build(d Definition, c Config) (Job, error) {
	j, err := d.New(c)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", d.Name, err)
	}
	if j.Name() != d.Name {
		return nil, fmt.Errorf("%s: the job calls itself %q", d.Name, j.Name())
	}
	desc := j.Describe()
	if desc.Kind != d.Kind {
		return nil, fmt.Errorf("%s: defined as %s but describes itself as %s", d.Name, d.Kind, desc.Kind)
	}
	if err := desc.Validate(l.syncOwned); err != nil {
		return nil, fmt.Errorf("%s cannot be registered: %w", d.Name, err)
	}
	return j, nil
}

// Names returns the job names, sorted.
func (l *Library) Names() []string { return append([]string(nil), l.names...) }

// Defaults returns a new configuration of the named job holding its defaults; ok is false for an unknown job.
func (l *Library) Defaults(name string) (c Config, ok bool) {
	d, ok := l.defs[name]
	if !ok {
		return nil, false
	}
	return d.Defaults(), true
}

// Check validates the named job's configuration: the settings every job has, the job's own keys, and the
// job built from it (a configured value must not make it declare a write it may not make). It normalises
// what it accepts (mode spelling).
func (l *Library) Check(name string, c Config) []FieldError { return l.check(name, c, true) }

// check is Check; named says the configuration names the job, so its required keys (RequiredChecker) must
// be set.
func (l *Library) check(name string, c Config, named bool) []FieldError {
	d, ok := l.defs[name]
	if !ok {
		return []FieldError{{Field: "", Message: l.unknown(name)}}
	}
	out := c.Common().check(d.Kind)
	out = append(out, c.Check()...)
	if rc, ok := c.(RequiredChecker); ok && named {
		out = append(out, rc.CheckRequired()...)
	}
	if len(out) == 0 {
		if _, err := l.build(d, c); err != nil {
			out = append(out, FieldError{Field: "", Message: err.Error()})
		}
	}
	return out
}

func (l *Library) unknown(name string) string {
	return fmt.Sprintf("no job %q; known jobs: %s (see `worker jobs`)", name, strings.Join(l.names, ", "))
}

// Registry builds every job of the library: the ones the configuration names (configured) from their
// configuration, the others from their defaults. Every job is there so that `worker jobs` can show it and
// a person can run it once on purpose (`worker run`); only configured jobs are scheduled or started by the
// daemon, its API and webhooks (Registry.Configured).
func (l *Library) Registry(configured map[string]Config) (*Registry, error) {
	r := &Registry{entries: map[string]*Entry{}, names: l.Names()}
	for name := range configured {
		if _, ok := l.defs[name]; !ok {
			return nil, fmt.Errorf("jobs.%s: %s", name, l.unknown(name))
		}
	}
	var problems []string
	for _, name := range l.names {
		d := l.defs[name]
		c, isConfigured := configured[name]
		if !isConfigured {
			c = d.Defaults()
		}
		if fe := l.check(name, c, isConfigured); len(fe) > 0 {
			for _, e := range fe {
				problems = append(problems, fmt.Sprintf("jobs.%s.%s", name, e.Error()))
			}
			continue
		}
		j, err := l.build(d, c)
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		r.entries[name] = &Entry{Job: j, Config: c, Configured: isConfigured}
	}
	if len(problems) > 0 {
		return nil, errors.New(strings.Join(problems, "; "))
	}
	return r, nil
}

// Registry is the library built from one configuration.
type Registry struct {
	entries map[string]*Entry
	names   []string
}

// Entry is one job of a registry with the configuration it was built from.
type Entry struct {
	Job    Job
	Config Config
	// Configured is true when the configuration names the job (jobs.<name>); false when it runs on its
	// defaults, which only a person running it once (`worker run`, `worker report`) may do.
	Configured bool
}

// Settings are the job's effective settings (its configuration's, or its defaults).
func (e *Entry) Settings() Settings { return *e.Config.Common() }

// NewRegistry is a registry of ready-made jobs with default settings, all counted as configured: for tests
// and tools that build jobs themselves. A duplicate name is an error.
func NewRegistry(js ...Job) (*Registry, error) {
	r := &Registry{entries: map[string]*Entry{}}
	for _, j := range js {
		if _, dup := r.entries[j.Name()]; dup {
			return nil, fmt.Errorf("jobs: %q registered twice", j.Name())
		}
		s := DefaultSettings(j.Describe().Kind)
		r.entries[j.Name()] = &Entry{Job: j, Config: &s, Configured: true}
		r.names = append(r.names, j.Name())
	}
	sort.Strings(r.names)
	return r, nil
}

// Check implements Config for a bare Settings (NewRegistry).
func (s *Settings) Check() []FieldError { return nil }

// Get returns the named job or an error that lists the jobs there are.
func (r *Registry) Get(name string) (Job, error) {
	e, err := r.Entry(name)
	if err != nil {
		return nil, err
	}
	return e.Job, nil
}

// Entry returns the named job with its configuration.
func (r *Registry) Entry(name string) (*Entry, error) {
	e, ok := r.entries[name]
	if !ok {
		return nil, fmt.Errorf("no job %q; known jobs: %s (see `worker jobs`)", name, strings.Join(r.names, ", "))
	}
	return e, nil
}

// Names returns the job names in sorted order.
func (r *Registry) Names() []string { return append([]string(nil), r.names...) }

// All returns the jobs sorted by name.
func (r *Registry) All() []Job {
	out := make([]Job, 0, len(r.names))
	for _, n := range r.names {
		out = append(out, r.entries[n].Job)
	}
	return out
}

// Configured returns the entries the configuration names, sorted by name: what the daemon schedules and
// lets its API and webhooks start.
func (r *Registry) Configured() []*Entry {
	var out []*Entry
	for _, n := range r.names {
		if e := r.entries[n]; e.Configured {
			out = append(out, e)
		}
	}
	return out
}
