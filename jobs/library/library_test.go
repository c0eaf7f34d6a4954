package library_test

import (
	"context"
	"strings"
	"testing"

	"github.com/exo-worker/worker/exo"
	"github.com/exo-worker/worker/jobs"
	"github.com/exo-worker/worker/jobs/library"
)

// TestTheLibraryRegisters: every job of the library registers against the real table of parameters
// directory sync owns, and builds from its defaults.
func TestTheLibraryRegisters(t *testing.T) {
	lib, err := library.New()
	if err != nil {
		t.Fatal(err)
	}
	if len(lib.Names()) != len(library.Definitions()) {
		t.Errorf("names %v for %d definitions", lib.Names(), len(library.Definitions()))
	}
	reg, err := library.Defaults()
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range reg.Configured() {
		t.Errorf("%s counts as configured with no configuration", e.Job.Name())
	}
	for _, name := range reg.Names() {
		e, _ := reg.Entry(name)
		if st := e.Settings(); st.MaxChanges <= 0 || st.MaxChangePercent <= 0 || st.MaxChangePercent > 100 {
			t.Errorf("%s: default blast radius %d / %g%% is not finite", name, st.MaxChanges, st.MaxChangePercent)
		}
	}
}

// syncWriter is a remediation job that would set ExternalEmailAddress (the AD targetAddress) on the
// directory-synced mail users it reads: Exchange refuses that write on every one of them.
type syncWriter struct{ cloudOnly bool }

func (syncWriter) Name() string { return "target-fixer" }
func (w syncWriter) Describe() jobs.Description {
	return jobs.Description{Kind: jobs.KindRemediate, Permissions: []jobs.Permission{jobs.ExchangeManageAsApp},
		Reads:  []jobs.Query{{Cmdlet: "Get-MailUser", Filter: jobs.MailUserScope, Select: []string{"ExternalDirectoryObjectId"}}},
		Writes: []jobs.Write{{Cmdlet: "Set-MailUser", Params: []string{"ExternalEmailAddress"}, CloudOnly: w.cloudOnly}}}
}
func (syncWriter) Plan(context.Context, *jobs.Tenant) (jobs.Plan, error) { return jobs.Plan{}, nil }

type syncWriterConfig struct {
	jobs.Settings `yaml:",inline"`
}

func (*syncWriterConfig) Check() []jobs.FieldError { return nil }

func define(j jobs.Job) jobs.Definition {
	return jobs.Define(j.Name(), jobs.KindRemediate,
		func() *syncWriterConfig { return &syncWriterConfig{jobs.DefaultSettings(jobs.KindRemediate)} },
		func(*syncWriterConfig) (jobs.Job, error) { return j, nil })
}

// TestRegisteringASyncOwnedWriteFails: a job whose declared writes set a parameter directory sync owns on
// dir-synced objects cannot be registered; the error names the job, the parameter, the AD attribute and
// the way out. The same write declared CloudOnly registers.
func TestRegisteringASyncOwnedWriteFails(t *testing.T) {
	_, err := jobs.NewLibrary(exo.SyncOwned, append(library.Definitions(), define(syncWriter{}))...)
	if err == nil {
		t.Fatal("a job writing ExternalEmailAddress on dir-synced mail users was registered")
	}
	for _, want := range []string{"target-fixer cannot be registered", "ExternalEmailAddress", "targetAddress", "on-premises", "CloudOnly"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if _, err := jobs.NewLibrary(exo.SyncOwned, define(syncWriter{cloudOnly: true})); err != nil {
		t.Errorf("the cloud-only write was refused: %v", err)
	}
}
