package server

import (
	"fmt"
)

// amPayload is the Alertmanager webhook body, version 4
// (prometheus/alertmanager notify/webhook). Only the fields the worker reads
// are declared; the rest (groupKey, externalURL, ...) is ignored.
type amPayload struct {
	Version         string    `json:"version"`
	Status          string    `json:"status"`
	Receiver        string    `json:"receiver"`
	TruncatedAlerts int       `json:"truncatedAlerts"`
	Alerts          []amAlert `json:"alerts"`
}

type amAlert struct {
	Status      string            `json:"status"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	Fingerprint string            `json:"fingerprint"`
}

// parseAlertmanager decodes an Alertmanager webhook body into alerts.
// Each alert's own status decides (the payload's status is "firing" when any
// alert fires, so it says nothing about one alert).
func parseAlertmanager(body []byte) ([]alert, error) {
	var p amPayload
	if err := unmarshalJSON(body, &p, false); err != nil {
		return nil, err
	}
	if p.Version != "4" {
		return nil, fmt.Errorf("%w: version is %q; this server reads the Alertmanager webhook payload version \"4\" (point a webhook_config receiver at it)", errBadPayload, clip(printable(p.Version), 20))
	}
	if p.Alerts == nil {
		return nil, fmt.Errorf("%w: no \"alerts\" array", errBadPayload)
	}
	out := make([]alert, 0, len(p.Alerts))
	for i, a := range p.Alerts {
		var firing bool
		switch a.Status {
		case "firing":
			firing = true
		case "resolved":
		default:
			return nil, fmt.Errorf("%w: alerts[%d].status is %q; Alertmanager sends \"firing\" or \"resolved\"", errBadPayload, i, clip(printable(a.Status), 20))
		}
		vals := make(map[string][]string, len(a.Labels))
		for k, v := range a.Labels {
			vals[k] = []string{v}
		}
		out = append(out, alert{firing: firing, name: a.Labels["alertname"], values: vals})
	}
	return out, nil
}
