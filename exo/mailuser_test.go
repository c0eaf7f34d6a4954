package exo

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// capturedMailUser follows research §4.1: annotations beside values, 7-digit fractional dates.
const capturedMailUser = `{
  "Identity": "3f2b9c1e-5a7d-4c1b-9e0f-1a2b3c4d5e6f",
  "Id": "3f2b9c1e-5a7d-4c1b-9e0f-1a2b3c4d5e6f",
  "Name": "3f2b9c1e-5a7d-4c1b-9e0f-1a2b3c4d5e6f",
  "Guid@data.type": "System.Guid", "Guid@odata.type": "#Guid",
  "Guid": "0b6d2f7a-1111-4c2e-8d3f-222233334444",
  "ExchangeObjectId@data.type": "System.Guid", "ExchangeObjectId@odata.type": "#Guid",
  "ExchangeObjectId": "9a41c0de-5555-4f6a-b7c8-666677778888",
  "ExternalDirectoryObjectId": "3f2b9c1e-5a7d-4c1b-9e0f-1a2b3c4d5e6f",
  "DisplayName": "Jane Doe (Fabrikam)",
  "Alias": "jdoe",
  "PrimarySmtpAddress": "jdoe@contoso.com",
  "WindowsEmailAddress": "jdoe@contoso.com",
  "EmailAddresses@odata.type": "#Collection(String)",
  "EmailAddresses": ["SMTP:jdoe@contoso.com", "smtp:jdoe@contoso.mail.onmicrosoft.com"],
  "ExternalEmailAddress": "SMTP:jane.doe@fabrikam.com",
  "UseMapiRichTextFormat": "UseDefaultSettings",
  "IsDirSynced": true,
  "RecipientType": "MailUser",
  "RecipientTypeDetails": "MailUser",
  "HiddenFromAddressListsEnabled": false,
  "UserPrincipalName": "jdoe@contoso.com",
  "CustomAttribute1": "",
  "WhenCreated@data.type": "System.DateTime", "WhenCreated": "2023-03-01T10:11:12.1234567+01:00",
  "WhenChanged@data.type": "System.DateTime", "WhenChanged": "2025-11-02T08:00:01.0000000+00:00",
  "WhenCreatedUTC@data.type": "System.DateTime", "WhenCreatedUTC": "2023-03-01T09:11:12.1234567Z",
  "WhenChangedUTC@data.type": "System.DateTime", "WhenChangedUTC": "2025-11-02T08:00:01.0000000Z"
}`

func TestDecodeMailUser(t *testing.T) {
	mu, err := Decode[MailUser](json.RawMessage(capturedMailUser))
	if err != nil {
		t.Fatal(err)
	}
	if mu.ExternalDirectoryObjectId != "3f2b9c1e-5a7d-4c1b-9e0f-1a2b3c4d5e6f" || mu.Guid != "0b6d2f7a-1111-4c2e-8d3f-222233334444" ||
		mu.ExchangeObjectId != "9a41c0de-5555-4f6a-b7c8-666677778888" {
		t.Errorf("ids wrong: %+v", mu)
	}
	if !mu.IsDirSynced || mu.RecipientTypeDetails != "MailUser" || mu.UseMapiRichTextFormat != "UseDefaultSettings" {
		t.Errorf("flags wrong: %+v", mu)
	}
	if len(mu.EmailAddresses) != 2 || mu.EmailAddresses[0] != "SMTP:jdoe@contoso.com" {
		t.Errorf("EmailAddresses = %v", mu.EmailAddresses)
	}
	wantCreated := time.Date(2023, 3, 1, 9, 11, 12, 123456700, time.UTC)
	if !mu.WhenCreated.Equal(wantCreated) || !mu.WhenCreatedUTC.Equal(wantCreated) {
		t.Errorf("WhenCreated = %v / %v, want %v", mu.WhenCreated, mu.WhenCreatedUTC, wantCreated)
	}
	if mu.WhenChangedUTC.IsZero() || !mu.WhenChanged.Equal(mu.WhenChangedUTC) {
		t.Errorf("WhenChanged = %v, WhenChangedUTC = %v", mu.WhenChanged, mu.WhenChangedUTC)
	}
}

func TestDecodeDates(t *testing.T) {
	tests := []struct {
		name string
		json string
		want time.Time
		err  bool
	}{
		{"RFC 3339 with Z", `{"WhenChangedUTC":"2025-11-02T08:00:01.0000000Z"}`, time.Date(2025, 11, 2, 8, 0, 1, 0, time.UTC), false},
		{"no zone is UTC", `{"WhenChangedUTC":"2025-11-02T08:00:01.5"}`, time.Date(2025, 11, 2, 8, 0, 1, 5e8, time.UTC), false},
		{"MS JSON date", `{"WhenChangedUTC":"/Date(1762070401000)/"}`, time.UnixMilli(1762070401000).UTC(), false},
		{"culture format when annotated", `{"WhenChangedUTC@data.type":"System.DateTime","WhenChangedUTC":"11/2/2025 8:00:01 AM"}`,
			time.Date(2025, 11, 2, 8, 0, 1, 0, time.UTC), false},
		{"empty string", `{"WhenChangedUTC":""}`, time.Time{}, false},
		{"null", `{"WhenChangedUTC":null}`, time.Time{}, false},
		{"absent", `{}`, time.Time{}, false},
		{"garbage is an error", `{"WhenChangedUTC":"yesterday"}`, time.Time{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mu, err := Decode[MailUser](json.RawMessage(tt.json))
			if (err != nil) != tt.err {
				t.Fatalf("err = %v, want error %v", err, tt.err)
			}
			if err == nil && !mu.WhenChangedUTC.Equal(tt.want) {
				t.Errorf("WhenChangedUTC = %v, want %v", mu.WhenChangedUTC, tt.want)
			}
		})
	}
}

func TestDecodeOthers(t *testing.T) {
	raw := json.RawMessage(`{"Identity":"Sales","DisplayName":"Sales","ManagedBy@odata.type":"#Collection(String)",
		"ManagedBy":["admin"],"GroupType":"Universal","IsDirSynced":true,"RecipientTypeDetails":"MailUniversalDistributionGroup"}`)
	dg, err := Decode[DistributionGroup](raw)
	if err != nil {
		t.Fatal(err)
	}
	if dg.Identity != "Sales" || !dg.IsDirSynced || len(dg.ManagedBy) != 1 || dg.GroupType != "Universal" {
		t.Errorf("DistributionGroup = %+v", dg)
	}
	ad, err := Decode[AcceptedDomain](json.RawMessage(`{"DomainName":"contoso.com","DomainType":"Authoritative","Default":true}`))
	if err != nil || ad.DomainName != "contoso.com" || !ad.Default {
		t.Errorf("AcceptedDomain = %+v, %v", ad, err)
	}
	m, err := Decode[map[string]any](json.RawMessage(capturedMailUser))
	if err != nil {
		t.Fatal(err)
	}
	for k := range m {
		if strings.Contains(k, "@") {
			t.Errorf("annotation %q kept", k)
		}
	}
	if _, err := Decode[MailUser](json.RawMessage(`[1,2]`)); err == nil {
		t.Error("a non-object decoded without error")
	}
	if _, err := Decode[MailUser](json.RawMessage(`{"IsDirSynced":"maybe"}`)); err == nil {
		t.Error("a wrongly typed field decoded without error")
	}
}

func TestParseEnvelope(t *testing.T) {
	h := map[string][]string{"Request-Id": {"r1"}}
	tests := []struct {
		name     string
		status   int
		body     string
		values   int
		warnings int
		next     string
		kind     Kind // KindUnknown = success
	}{
		{"values with warnings", 200, `{"@odata.context":"x","adminapi.warnings@odata.type":"#Collection(String)","@adminapi.warnings":["w1"],"value":[{"a":1},{"a":2}]}`, 2, 1, "", KindUnknown},
		{"next link", 200, `{"value":[{}],"@odata.nextLink":"https://h/adminapi/beta/t/InvokeCommand?$skiptoken=1"}`, 1, 0, "https://h/adminapi/beta/t/InvokeCommand?$skiptoken=1", KindUnknown},
		{"next link without @", 200, `{"value":[],"odata.nextLink":"https://h/n"}`, 0, 0, "https://h/n", KindUnknown},
		{"no value", 200, `{"@adminapi.warnings":["The command completed successfully but no settings of 'x' have been modified."]}`, 0, 1, "", KindUnknown},
		{"204", 204, ``, 0, 0, "", KindUnknown},
		{"empty 200", 200, ``, 0, 0, "", KindUnknown},
		{"truncated", 200, `{"value":[{"a":1},{"a`, 0, 0, "", KindOutcomeUnknown}, // a 2xx cut short: the cmdlet ran (reads turn it back into Transient)
		{"adminapi errors", 200, `{"value":[],"@adminapi.errors":["Ex94914C|Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException|Couldn't find object \"x\"."]}`, 0, 0, "", KindNotFound},
		{"adminapi errors plain", 200, `{"@adminapi.errors":["something went wrong"]}`, 0, 0, "", KindBadRequest},
		{"single object value", 200, `{"value":{"a":1}}`, 1, 0, "", KindUnknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, e := parseEnvelope(tt.status, h, []byte(tt.body))
			if tt.kind != KindUnknown {
				if e == nil || e.Kind != tt.kind {
					t.Fatalf("error = %v, want kind %v", e, tt.kind)
				}
				return
			}
			if e != nil {
				t.Fatal(e)
			}
			if len(resp.Values) != tt.values || len(resp.Warnings) != tt.warnings || resp.NextLink != tt.next || resp.RequestID != "r1" {
				t.Errorf("got %d values, %d warnings, next %q, rid %q", len(resp.Values), len(resp.Warnings), resp.NextLink, resp.RequestID)
			}
		})
	}
}
