// Package jobs is the job-authoring API of exo-worker: what a job is (Job, Description), what it may say it
// wants (Plan: Changes and Findings about ObjectRefs), the snapshot it plans over (Tenant), the modes a run
// can take (Mode) and the registry the worker builds from the job library (jobs/library). Read this package
// first; docs/ADDING-A-JOB.md walks through adding a job end to end.
//
// A job is pure: it receives a read-only snapshot of the tenant and returns the changes it wants and the
// findings it saw. It never calls the network and never looks at dry-run, limits or exceptions — the
// executor (jobs/executor) alone decides what is applied, journals it, sends it and reads it back, so a new
// job cannot leak a write (external-dns's lesson).
//
// The packages around it:
//
//	jobs             this API (types only, no I/O but LoadTenant's declared reads)
//	jobs/executor    applies plans: modes, blast radius, exceptions, journal, batches, read-back
//	jobs/audit       the audits (findings only) and their rule catalogue
//	jobs/meurichtext job 1, meu-richtext: a complete small remediation job to copy
//	jobs/library     the one list of every job the worker knows
//	jobs/jobtest     test helpers: a simulated tenant and an exo client pointed at it
//
// A worked example, a job that sets one parameter on every directory-synced mail user:
//
//	type Job struct{ Target string }
//
//	func (j *Job) Name() string { return "meu-example" }
//
//	func (j *Job) Describe() jobs.Description {
//		return jobs.Description{
//			Summary: "Set ExampleParam on every directory-synced mail user",
//			Kind:    jobs.KindRemediate,
//			Owns:    []string{"Set-MailUser.ExampleParam"},
//			Reads: []jobs.Query{{Cmdlet: "Get-MailUser", Filter: jobs.MailUserScope,
//				Select: []string{"ExternalDirectoryObjectId", "DisplayName", "PrimarySmtpAddress", "ExampleParam"}}},
//		}
//	}
//
//	func (j *Job) Plan(_ context.Context, t *jobs.Tenant) (jobs.Plan, error) {
//		var p jobs.Plan
//		for _, mu := range t.MailUsers {
//			p.InScope++
//			if mu.ExampleParam != j.Target {
//				p.Changes = append(p.Changes, jobs.Change{
//					Object: jobs.ObjectRef{ID: mu.ExternalDirectoryObjectId, DisplayName: mu.DisplayName},
//					Cmdlet: "Set-MailUser", Param: "ExampleParam", From: mu.ExampleParam, To: j.Target,
//				})
//			}
//		}
//		return p, nil
//	}
//
// jobs/meurichtext is the same shape with its real parameter; copy it.
package jobs
