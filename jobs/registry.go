package jobs

import (
	"fmt"
	"sort"
	"strings"
)

// Registry maps job names to jobs. It is built once at start from the configuration.
type Registry struct {
	jobs map[string]Job
}

// NewRegistry returns a registry holding the given jobs. A duplicate name is a programming error and is
// reported, not panicked on.
func NewRegistry(js ...Job) (*Registry, error) {
	r := &Registry{jobs: map[string]Job{}}
	for _, j := range js {
		if _, dup := r.jobs[j.Name()]; dup {
			return nil, fmt.Errorf("jobs: %q registered twice", j.Name())
		}
		r.jobs[j.Name()] = j
	}
	return r, nil
}

// Get returns the named job or an error that lists the jobs there are.
func (r *Registry) Get(name string) (Job, error) {
	j, ok := r.jobs[name]
	if !ok {
		return nil, fmt.Errorf("no job %q; known jobs: %s (see `worker jobs`)", name, strings.Join(r.Names(), ", "))
	}
	return j, nil
}

// Names returns the job names in sorted order.
func (r *Registry) Names() []string {
	names := make([]string, 0, len(r.jobs))
	for n := range r.jobs {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// All returns the jobs sorted by name.
func (r *Registry) All() []Job {
	out := make([]Job, 0, len(r.jobs))
	for _, n := range r.Names() {
		out = append(out, r.jobs[n])
	}
	return out
}
