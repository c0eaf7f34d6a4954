// Package server is the worker's HTTP side: health and readiness probes,
// Prometheus metrics, the run API, alert webhooks (Alertmanager, Azure
// Monitor) that trigger targeted reruns, and a plain HTML status page.
//
// The server does not run jobs or read SQL. It talks to the daemon through
// three small interfaces declared here — Runner (start runs, list jobs),
// RunReader (runs and findings; *store.SQLite satisfies it) and Readiness —
// so it is tested with small in-test implementations and wired to the real
// scheduler and store by `worker serve`.
//
// # Endpoints
//
//	GET  /healthz                      200 while the process is up               open
//	GET  /readyz                       200, or 503 {"reasons": [codes]}          open (details with the token; cached 30 s, failures 5 s)
//	GET  /metrics                      Prometheus exposition                     open
//	GET  /                             status page (HTML, basic auth prompt)     token
//	GET  /api/v1/jobs                  {"jobs": [JobInfo]}                        token
//	POST /api/v1/runs                  {"job", "objects"?, "reason"?} → 202       token
//	                                   {"job", "run_id", "coalesced", "objects"}
//	GET  /api/v1/runs                  ?job= &status= &limit=1..1000 &before=RFC3339
//	                                   → {"runs": [...], "next_before"?}          token
//	GET  /api/v1/runs/{id}             one run (status queued before it starts), 404 if unknown  token
//	GET  /api/v1/findings              ?job= &rule= &severity= &object= &limit= &cursor=
//	                                   → {"findings", "count", "truncated", "next_cursor"?}  token
//	POST /api/v1/hooks/alertmanager    Alertmanager webhook payload version 4     token
//	POST /api/v1/hooks/azure-monitor   Azure Monitor common alert schema          token
//
// "token" means Authorization: Bearer <token>, or HTTP basic auth with the
// token as the password (any user name). Alertmanager: http_config
// authorization.credentials or basic_auth.password. Azure Monitor action
// groups: basic credentials in the webhook URL (https://x:<token>@host/...).
// Without a configured token the token endpoints answer 503: closed, never
// open.
//
// Errors are JSON {"error": "short phrase", "detail": "what to do"}: 400
// malformed JSON or payload (with the reason), 401 no or wrong token, 403 a
// cross-site browser request, 404 unknown job (with "known_jobs") or run, 413
// body over the limit, 415 not JSON, 429 too many triggers (Retry-After), 503
// store unavailable or shutting down.
//
// Webhooks answer 202 with the runs triggered, or 200 with "triggered": []
// when there was nothing to do (all alerts resolved, or no firing alert
// matched a TriggerRule) so that the sender does not retry. See TriggerRule
// for how alerts map to jobs and object ids.
//
// Findings and runs name people and addresses: they are only behind the
// token, the status page shows counts by rule (not objects), metric labels
// carry job, rule, severity, status and service only, and the log never
// carries the token or the Authorization header.
package server
