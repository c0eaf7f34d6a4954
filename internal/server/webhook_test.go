package server

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/exo-worker/worker/internal/store"
)

func TestAlertmanagerWebhook(t *testing.T) {
	amAlert := func(status, name, objects string) string {
		labels := `"alertname":"` + name + `"`
		if objects != "" {
			labels += `,"object_ids":"` + objects + `"`
		}
		return `{"status":"` + status + `","labels":{` + labels + `},"annotations":{},"startsAt":"2026-03-01T10:00:00Z"}`
	}
	payload := func(alerts ...string) string {
		return `{"version":"4","status":"firing","receiver":"exo-worker","groupLabels":{},"commonLabels":{},"alerts":[` + strings.Join(alerts, ",") + `]}`
	}
	tests := []struct {
		name       string
		body       string
		wantStatus int
		want       []Trigger
		wantDetail string
	}{
		{
			name:       "firing alerts name exactly their objects, resolved ones are ignored",
			body:       testdata(t, "alertmanager-firing.json"),
			wantStatus: 202,
			want: []Trigger{{Job: "meu-richtext", Objects: []string{objB, objA, objC}, Source: store.TriggerAlert,
				Reason: "alertmanager: alertname=MEUPlainTextInvites"}},
		},
		{
			name:       "all resolved: acknowledged, nothing started",
			body:       testdata(t, "alertmanager-resolved.json"),
			wantStatus: 200,
			wantDetail: "no firing alert",
		},
		{
			name:       "no rule matches: acknowledged, nothing started",
			body:       payload(amAlert("firing", "DiskFull", objA)),
			wantStatus: 200,
			wantDetail: "matched a trigger rule",
		},
		{
			name:       "rule without object label: whole scope",
			body:       payload(amAlert("firing", "AddressDrift", objA)),
			wantStatus: 202,
			want:       []Trigger{{Job: "address-audit", Source: store.TriggerAlert, Reason: "alertmanager: alertname=AddressDrift"}},
		},
		{
			name:       "matching alert without the object label widens to the whole scope",
			body:       payload(amAlert("firing", "MEUPlainTextInvites", objA), amAlert("firing", "MEUPlainTextInvites", "")),
			wantStatus: 202,
			want:       []Trigger{{Job: "meu-richtext", Source: store.TriggerAlert, Reason: "alertmanager: alertname=MEUPlainTextInvites"}},
		},
		{
			name:       "two jobs in one payload: one trigger each",
			body:       payload(amAlert("firing", "AddressDrift", ""), amAlert("firing", "MEUPlainTextInvites", objD)),
			wantStatus: 202,
			want: []Trigger{
				{Job: "address-audit", Source: store.TriggerAlert, Reason: "alertmanager: alertname=AddressDrift"},
				{Job: "meu-richtext", Objects: []string{objD}, Source: store.TriggerAlert, Reason: "alertmanager: alertname=MEUPlainTextInvites"},
			},
		},
		{
			name:       "an address instead of an object id is refused",
			body:       payload(amAlert("firing", "MEUPlainTextInvites", objA+",jane@contoso.com")),
			wantStatus: 400,
			wantDetail: `\"jane@contoso.com\" is not an object id`,
		},
		{
			name:       "wrong version",
			body:       `{"version":"3","alerts":[]}`,
			wantStatus: 400,
			wantDetail: `version is \"3\"`,
		},
		{
			name:       "unknown alert status",
			body:       payload(amAlert("pending", "MEUPlainTextInvites", objA)),
			wantStatus: 400,
			wantDetail: "alerts[0].status",
		},
		{
			name:       "no alerts array",
			body:       `{"version":"4","status":"firing"}`,
			wantStatus: 400,
			wantDetail: "alerts",
		},
		{
			name:       "malformed",
			body:       `{"version":"4","alerts":[{]}`,
			wantStatus: 400,
			wantDetail: "syntax error",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, nil)
			resp := h.do(t, request{method: "POST", path: "/api/v1/hooks/alertmanager", body: tt.body}, bearer(testToken))
			body := bodyOf(t, resp)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.wantStatus, body)
			}
			if !strings.Contains(body, tt.wantDetail) {
				t.Errorf("body %s does not contain %q", body, tt.wantDetail)
			}
			assertTriggers(t, h.runner.Calls(), tt.want)
		})
	}
}

func TestAlertmanagerWebhookAnswer(t *testing.T) {
	h := newHarness(t, nil)
	resp := h.do(t, request{method: "POST", path: "/api/v1/hooks/alertmanager", body: testdata(t, "alertmanager-firing.json")}, basic("alertmanager", testToken))
	got := decode[webhookResponse](t, resp)
	if got.Firing != 2 || got.Resolved != 1 || len(got.Triggered) != 1 || got.Triggered[0].RunID != "RUN0001" {
		t.Fatalf("answer %+v, want 2 firing, 1 resolved, one triggered run RUN0001", got)
	}
}

func TestAzureMonitorWebhook(t *testing.T) {
	fired := testdata(t, "azure-monitor-log-fired.json")
	tests := []struct {
		name       string
		body       string
		wantStatus int
		want       []Trigger
		wantDetail string
	}{
		{
			name:       "fired log alert: objects from the dimensions",
			body:       fired,
			wantStatus: 202,
			want: []Trigger{{Job: "meu-richtext", Objects: []string{objA, objB}, Source: store.TriggerAlert,
				Reason: "azure-monitor: alertRule=MEU plain-text invites"}},
		},
		{
			name:       "resolved: acknowledged, nothing started",
			body:       testdata(t, "azure-monitor-metric-resolved.json"),
			wantStatus: 200,
			wantDetail: "no firing alert",
		},
		{
			name:       "custom property does not match",
			body:       strings.Replace(fired, `"worker_job": "meu-richtext"`, `"worker_job": "other"`, 1),
			wantStatus: 200,
			wantDetail: "matched a trigger rule",
		},
		{
			name:       "no dimensions: whole scope",
			body:       `{"schemaId":"azureMonitorCommonAlertSchema","data":{"essentials":{"alertRule":"MEU plain-text invites","monitorCondition":"Fired","severity":"Sev2"},"alertContext":{"activityLog":{}},"customProperties":{"worker_job":"meu-richtext"}}}`,
			wantStatus: 202,
			want:       []Trigger{{Job: "meu-richtext", Source: store.TriggerAlert, Reason: "azure-monitor: alertRule=MEU plain-text invites"}},
		},
		{
			name:       "not the common schema",
			body:       `{"schemaId":"Microsoft.Insights/activityLogs","data":{}}`,
			wantStatus: 400,
			wantDetail: "enable the common alert schema",
		},
		{
			name:       "no essentials",
			body:       `{"schemaId":"azureMonitorCommonAlertSchema","data":{}}`,
			wantStatus: 400,
			wantDetail: "essentials",
		},
		{
			name:       "unknown monitor condition",
			body:       `{"schemaId":"azureMonitorCommonAlertSchema","data":{"essentials":{"alertRule":"x","monitorCondition":"Acknowledged"}}}`,
			wantStatus: 400,
			wantDetail: "monitorCondition",
		},
		{
			name:       "Alertmanager payload sent to the Azure hook",
			body:       testdata(t, "alertmanager-firing.json"),
			wantStatus: 400,
			wantDetail: "schemaId",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, nil)
			resp := h.do(t, request{method: "POST", path: "/api/v1/hooks/azure-monitor", body: tt.body, contentType: "application/json; charset=utf-8"}, bearer(testToken))
			body := bodyOf(t, resp)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.wantStatus, body)
			}
			if !strings.Contains(body, tt.wantDetail) {
				t.Errorf("body %s does not contain %q", body, tt.wantDetail)
			}
			assertTriggers(t, h.runner.Calls(), tt.want)
		})
	}
}

func TestWebhookRateLimitIsAllOrNothing(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.TriggerBurst = 1 })
	// Use up meu-richtext's only token through the API.
	if resp := h.do(t, request{method: "POST", path: "/api/v1/runs", body: `{"job":"meu-richtext"}`}, bearer(testToken)); resp.StatusCode != 202 {
		t.Fatalf("setup trigger: %d", resp.StatusCode)
	}
	body := `{"version":"4","status":"firing","alerts":[` +
		`{"status":"firing","labels":{"alertname":"AddressDrift"}},` +
		`{"status":"firing","labels":{"alertname":"MEUPlainTextInvites","object_ids":"` + objA + `"}}]}`
	resp := h.do(t, request{method: "POST", path: "/api/v1/hooks/alertmanager", body: body}, bearer(testToken))
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("status %d Retry-After %q, want 429 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if calls := h.runner.Calls(); len(calls) != 1 {
		t.Fatalf("runner saw %+v; the refused webhook must start nothing, not even address-audit", calls)
	}
	// address-audit's token was given back: it can still be triggered.
	if resp := h.do(t, request{method: "POST", path: "/api/v1/runs", body: `{"job":"address-audit"}`}, bearer(testToken)); resp.StatusCode != 202 {
		t.Fatalf("address-audit after the refused webhook: %d, want 202", resp.StatusCode)
	}
}

func TestWebhookOversize(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.MaxBodyBytes = 512 })
	resp := h.do(t, request{method: "POST", path: "/api/v1/hooks/alertmanager", body: testdata(t, "alertmanager-firing.json")}, bearer(testToken))
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("status %d, want 413", resp.StatusCode)
	}
	if len(h.runner.Calls()) != 0 {
		t.Fatalf("an oversize webhook reached the runner")
	}
}

func TestValidateRules(t *testing.T) {
	jobs := []string{"address-audit", "meu-richtext"}
	tests := []struct {
		name  string
		rules []TriggerRule
		want  []string // substrings of the error; nil = valid
	}{
		{"valid", []TriggerRule{
			{Source: SourceAlertmanager, Match: map[string]string{"alertname": "X"}, Job: "meu-richtext", ObjectLabel: "object_ids"},
			{Source: SourceAzureMonitor, Match: map[string]string{"alertRule": "X", "customProperties.job": "y", "dimensions.ObjectId": "z"}, Job: "address-audit"},
		}, nil},
		{"every problem at once", []TriggerRule{
			{Source: "pagerduty", Match: map[string]string{"alertname": "X"}, Job: "meu-richtext"},
			{Source: SourceAlertmanager, Match: map[string]string{"alertname": "X"}, Job: "meu-plaintext"},
			{Source: SourceAlertmanager, Job: "meu-richtext"},
			{Source: SourceAzureMonitor, Match: map[string]string{"alertname": "X"}, Job: "meu-richtext"},
			{Source: SourceAlertmanager, Match: map[string]string{"alertname": "X"}},
		}, []string{
			`triggers[0].source: "pagerduty"`,
			`triggers[1].job: no job "meu-plaintext"; known jobs: address-audit, meu-richtext`,
			`triggers[2].match: empty`,
			`triggers[3]: "alertname" is not an Azure Monitor essentials field`,
			`triggers[4].job: missing`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := validateRules(tt.rules, jobs)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, want %v", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
	// New refuses bad rules too.
	_, err := New(Options{Token: []byte(testToken), Runner: newRecordingRunner(), Runs: &memRuns{},
		Triggers: []TriggerRule{{Source: SourceAlertmanager, Match: map[string]string{"alertname": "X"}, Job: "nope"}}})
	if err == nil || !strings.Contains(err.Error(), `no job "nope"`) {
		t.Fatalf("New with a rule for an unknown job: %v", err)
	}
}

func TestParseObjectIDs(t *testing.T) {
	tests := []struct {
		name    string
		in      []string
		want    []string
		wantErr string
	}{
		{"comma separated with spaces", []string{objA + " , " + objB}, []string{objA, objB}, ""},
		{"upper case folded and deduplicated", []string{strings.ToUpper(objA), objA}, []string{objA}, ""},
		{"empty parts skipped", []string{",," + objC + ","}, []string{objC}, ""},
		{"nothing", nil, nil, ""},
		{"braced guid refused", []string{"{" + objA + "}"}, nil, "is not an object id"},
		{"opath injection refused", []string{objA + "' -or Name -like '*"}, nil, "is not an object id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseObjectIDs(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || !slices.Equal(got, tt.want) {
				t.Fatalf("got %v, %v; want %v", got, err, tt.want)
			}
		})
	}
	many := make([]string, MaxObjects+1)
	for i := range many {
		many[i] = strings.Replace("00000000-0000-4000-8000-000000000000", "00000000", padHex(i), 1)
	}
	if _, err := parseObjectIDs(many); err == nil || !strings.Contains(err.Error(), "at most") {
		t.Fatalf("%d objects: err %v, want a refusal", len(many), err)
	}
}

func padHex(i int) string {
	const hex = "0123456789abcdef"
	b := []byte("00000000")
	for p := 7; p >= 0 && i > 0; p-- {
		b[p] = hex[i%16]
		i /= 16
	}
	return string(b)
}

// assertTriggers compares the runner's calls with want (objects sorted as
// planTriggers sorts them).
func assertTriggers(t *testing.T, got, want []Trigger) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("runner saw %d triggers %+v, want %d %+v", len(got), got, len(want), want)
	}
	for i := range want {
		w := want[i]
		w.Objects = slices.Clone(w.Objects)
		slices.Sort(w.Objects)
		if !equalTrigger(got[i], w) {
			t.Errorf("trigger %d = %+v, want %+v", i, got[i], w)
		}
	}
}
