package server

import (
	"net/http"
	"strings"

	"go.uber.org/zap"
)

// webhookResponse answers a webhook. Triggered lists the runs started or
// coalesced; Firing and Resolved count the payload's alerts.
type webhookResponse struct {
	Triggered []triggerResult `json:"triggered"`
	Firing    int             `json:"firing"`
	Resolved  int             `json:"resolved"`
	Detail    string          `json:"detail,omitempty"`
}

// webhook handles one alert source. Answers:
//   - 202 when at least one run was triggered (or coalesced);
//   - 200 with "triggered": [] when nothing was to be done: every alert was
//     resolved, or no firing alert matched a rule. That is not an error, and a
//     2xx keeps the sender from retrying;
//   - 400 for a payload that cannot be read, 413 over the size limit,
//     429 with Retry-After when a job was triggered too often (nothing is
//     started then, for any job of the payload), 5xx when the runner failed
//     (the sender retries; coalescing absorbs the repeats).
func (s *Server) webhook(source string, parse func([]byte) ([]alert, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !requireJSON(w, r) {
			return
		}
		body, err := readBody(w, r, s.opts.MaxBodyBytes)
		if err != nil {
			writeDecodeError(w, err)
			return
		}
		alerts, err := parse(body)
		if err != nil {
			s.log.Warn("webhook payload refused", zap.String("source", source), zap.Error(err))
			writeDecodeError(w, err)
			return
		}
		p, err := planTriggers(s.opts.Triggers, source, alerts)
		if err != nil {
			s.log.Warn("webhook objects refused", zap.String("source", source), zap.Error(err))
			writeError(w, http.StatusBadRequest, "invalid objects", err.Error())
			return
		}
		resp := webhookResponse{Triggered: []triggerResult{}, Firing: p.firing, Resolved: p.resolved}
		if len(p.triggers) == 0 {
			switch {
			case p.firing == 0:
				resp.Detail = "no firing alert: nothing to do"
			default:
				resp.Detail = "no firing alert matched a trigger rule for " + source + ": nothing to do"
				s.log.Info("webhook matched no trigger rule", zap.String("source", source), zap.Int("firing", p.firing))
			}
			writeJSON(w, http.StatusOK, resp)
			return
		}
		jobs := make([]string, len(p.triggers))
		for i, t := range p.triggers {
			jobs[i] = t.Job
		}
		if ok, wait := s.reserve(jobs); !ok {
			for _, j := range jobs {
				s.metrics.ObserveTrigger(j, "rate_limited")
			}
			writeRateLimited(w, wait, strings.Join(jobs, ", "))
			return
		}
		status := http.StatusAccepted
		for _, t := range p.triggers {
			res, st := s.trigger(r.Context(), t)
			resp.Triggered = append(resp.Triggered, res)
			// The worst failure decides: 503 asks the sender to retry later,
			// a 500 too; a 4xx (the rule names a job that went away) does not.
			if st > status || (st >= 400 && status < 400) {
				status = st
			}
		}
		writeJSON(w, status, resp)
	}
}
