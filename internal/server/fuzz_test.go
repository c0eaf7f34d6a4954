package server

import (
	"slices"
	"strings"
	"testing"
)

// fuzzRules is the rule set the fuzzers plan against: object labels on both
// sources so parsed ids flow into triggers.
var fuzzRules = []TriggerRule{
	{Source: SourceAlertmanager, Match: map[string]string{"alertname": "MEUPlainTextInvites"}, Job: "meu-richtext", ObjectLabel: "object_ids"},
	{Source: SourceAlertmanager, Match: map[string]string{"alertname": "AddressDrift"}, Job: "address-audit"},
	{Source: SourceAzureMonitor, Match: map[string]string{"alertRule": "MEU plain-text invites"}, Job: "meu-richtext", ObjectLabel: "dimensions.ObjectId"},
}

// checkPlan asserts what must hold for any payload the parser accepts.
func checkPlan(t *testing.T, source string, alerts []alert) {
	t.Helper()
	p, err := planTriggers(fuzzRules, source, alerts)
	if err != nil {
		if !strings.Contains(err.Error(), "object") {
			t.Fatalf("planning error without a reason a person can act on: %v", err)
		}
		return
	}
	if p.firing+p.resolved != len(alerts) {
		t.Fatalf("firing %d + resolved %d != %d alerts", p.firing, p.resolved, len(alerts))
	}
	if p.firing == 0 && len(p.triggers) != 0 {
		t.Fatalf("triggers %+v from a payload with no firing alert", p.triggers)
	}
	seen := map[string]bool{}
	for _, tr := range p.triggers {
		if seen[tr.Job] {
			t.Fatalf("job %s triggered twice by one payload", tr.Job)
		}
		seen[tr.Job] = true
		if tr.Source != "alert" || len(tr.Reason) > maxReasonLen+len("…") || !strings.HasPrefix(tr.Reason, source+": ") {
			t.Fatalf("bad trigger metadata %+v", tr)
		}
		if strings.ContainsAny(tr.Reason, "\n\r\x00") {
			t.Fatalf("control characters in reason %q", tr.Reason)
		}
		if len(tr.Objects) > MaxObjects || !slices.IsSorted(tr.Objects) || len(slices.Compact(slices.Clone(tr.Objects))) != len(tr.Objects) {
			t.Fatalf("objects not bounded, sorted and unique: %v", tr.Objects)
		}
		for _, id := range tr.Objects {
			if !guidRE.MatchString(id) || strings.ToLower(id) != id {
				t.Fatalf("object %q is not a lower-case GUID", id)
			}
		}
	}
}

func FuzzAlertmanagerPayload(f *testing.F) {
	f.Add([]byte(testdata(f, "alertmanager-firing.json")))
	f.Add([]byte(testdata(f, "alertmanager-resolved.json")))
	f.Add([]byte(`{"version":"4","alerts":[{"status":"firing","labels":{"alertname":"AddressDrift"}}]}`))
	f.Add([]byte(`{"version":"4","alerts":[{"status":"firing","labels":{"alertname":"MEUPlainTextInvites","object_ids":",,` + objA + `,x"}}]}`))
	f.Add([]byte(`{"version":"4","alerts":[{"status":"firing","labels":null}]}`))
	f.Add([]byte(`{"version":"4","alerts":null}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{"version":4}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		alerts, err := parseAlertmanager(body)
		if err != nil {
			if alerts != nil {
				t.Fatalf("alerts returned with error %v", err)
			}
			return
		}
		checkPlan(t, SourceAlertmanager, alerts)
	})
}

func FuzzAzureMonitorPayload(f *testing.F) {
	f.Add([]byte(testdata(f, "azure-monitor-log-fired.json")))
	f.Add([]byte(testdata(f, "azure-monitor-metric-resolved.json")))
	f.Add([]byte(`{"schemaId":"azureMonitorCommonAlertSchema","data":{"essentials":{"alertRule":"MEU plain-text invites","monitorCondition":"Fired"},"alertContext":{"condition":{"allOf":[{"dimensions":[{"name":"ObjectId","value":"` + objA + `"}]}]}}}}`))
	f.Add([]byte(`{"schemaId":"azureMonitorCommonAlertSchema","data":{"essentials":{"alertRule":["MEU plain-text invites",1,true,null],"monitorCondition":"Fired"},"alertContext":"x","customProperties":{"a":{"b":1}}}}`))
	f.Add([]byte(`{"schemaId":"azureMonitorCommonAlertSchema","data":null}`))
	f.Add([]byte(`{"schemaId":"azureMonitorCommonAlertSchema","data":{"essentials":{}}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		alerts, err := parseAzureMonitor(body)
		if err != nil {
			if alerts != nil {
				t.Fatalf("alerts returned with error %v", err)
			}
			return
		}
		if len(alerts) != 1 {
			t.Fatalf("%d alerts from one Azure payload, want 1", len(alerts))
		}
		checkPlan(t, SourceAzureMonitor, alerts)
	})
}
