package exo

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"iter"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// MailUser is the part of a Get-MailUser object the worker reads (research §4.1). Fields not returned
// (not selected, or absent) stay zero.
type MailUser struct {
	Identity                  string   `json:"Identity"`
	Name                      string   `json:"Name"`
	Alias                     string   `json:"Alias"`
	DisplayName               string   `json:"DisplayName"`
	ExternalDirectoryObjectId string   `json:"ExternalDirectoryObjectId"`
	Guid                      string   `json:"Guid"`
	ExchangeObjectId          string   `json:"ExchangeObjectId"`
	PrimarySmtpAddress        string   `json:"PrimarySmtpAddress"`
	EmailAddresses            []string `json:"EmailAddresses"`
	ExternalEmailAddress      string   `json:"ExternalEmailAddress"`
	UseMapiRichTextFormat     string   `json:"UseMapiRichTextFormat"` // Always | Never | UseDefaultSettings
	// UsePreferMessageFormat makes the mail user's own format settings win over its remote domain's.
	UsePreferMessageFormat        bool      `json:"UsePreferMessageFormat"`
	IsDirSynced                   bool      `json:"IsDirSynced"`
	RecipientType                 string    `json:"RecipientType"`
	RecipientTypeDetails          string    `json:"RecipientTypeDetails"` // MailUser | GuestMailUser | ...
	HiddenFromAddressListsEnabled bool      `json:"HiddenFromAddressListsEnabled"`
	UserPrincipalName             string    `json:"UserPrincipalName"`
	WindowsEmailAddress           string    `json:"WindowsEmailAddress"`
	WhenCreated                   time.Time `json:"WhenCreated"`
	WhenChanged                   time.Time `json:"WhenChanged"`
	WhenCreatedUTC                time.Time `json:"WhenCreatedUTC"`
	WhenChangedUTC                time.Time `json:"WhenChangedUTC"`
}

// Recipient is the common subset of Get-Recipient output (research §4.2).
type Recipient struct {
	Identity                      string    `json:"Identity"`
	Name                          string    `json:"Name"`
	Alias                         string    `json:"Alias"`
	DisplayName                   string    `json:"DisplayName"`
	ExternalDirectoryObjectId     string    `json:"ExternalDirectoryObjectId"`
	Guid                          string    `json:"Guid"`
	ExchangeObjectId              string    `json:"ExchangeObjectId"`
	PrimarySmtpAddress            string    `json:"PrimarySmtpAddress"`
	EmailAddresses                []string  `json:"EmailAddresses"`
	ExternalEmailAddress          string    `json:"ExternalEmailAddress"`
	RecipientType                 string    `json:"RecipientType"`
	RecipientTypeDetails          string    `json:"RecipientTypeDetails"`
	IsDirSynced                   bool      `json:"IsDirSynced"`
	HiddenFromAddressListsEnabled bool      `json:"HiddenFromAddressListsEnabled"`
	WhenCreatedUTC                time.Time `json:"WhenCreatedUTC"`
	WhenChangedUTC                time.Time `json:"WhenChangedUTC"`
}

// Mailbox is the part of Get-Mailbox output the audits read.
type Mailbox struct {
	Recipient
	UserPrincipalName      string `json:"UserPrincipalName"`
	WindowsEmailAddress    string `json:"WindowsEmailAddress"`
	ExchangeGuid           string `json:"ExchangeGuid"`
	IsExchangeCloudManaged bool   `json:"IsExchangeCloudManaged"`
}

// MailContact is the part of Get-MailContact output the audits read.
type MailContact struct {
	Recipient
	UseMapiRichTextFormat string `json:"UseMapiRichTextFormat"`
}

// DistributionGroup is the part of Get-DistributionGroup output the audits read.
type DistributionGroup struct {
	Recipient
	ManagedBy []string `json:"ManagedBy"`
	GroupType string   `json:"GroupType"` // e.g. "Universal, SecurityEnabled"
}

// RemoteDomain is the part of Get-RemoteDomain output that decides the format of mail to a domain
// (Set-RemoteDomain docs): TNEFEnabled true forces TNEF, false forbids it, null (nil) leaves it to the
// recipient's settings; DomainName is an SMTP domain, "*.domain" or "*" (the built-in Default).
type RemoteDomain struct {
	Identity    string `json:"Identity"`
	Name        string `json:"Name"`
	DomainName  string `json:"DomainName"`
	TNEFEnabled *bool  `json:"TNEFEnabled"`
	ContentType string `json:"ContentType"`
}

// AcceptedDomain is one Get-AcceptedDomain object.
type AcceptedDomain struct {
	Identity   string `json:"Identity"`
	Name       string `json:"Name"`
	DomainName string `json:"DomainName"`
	DomainType string `json:"DomainType"` // Authoritative | InternalRelay | ExternalRelay
	Default    bool   `json:"Default"`
	// InitialDomain marks the tenant's *.onmicrosoft.com domain.
	InitialDomain bool `json:"InitialDomain"`
}

// Decode turns one output object into T. Annotation keys (anything with '@', e.g. "Guid@odata.type") are
// dropped, and dates are accepted in the forms Exchange uses: 7 fractional digits with an offset or Z,
// without a zone (taken as UTC), the old /Date(ms)/ form, and empty or null (zero time).
func Decode[T any](raw json.RawMessage) (T, error) {
	// The common case decodes once: annotation keys match no field, and dates in RFC 3339 parse as they
	// are. Only a value the direct decode refuses (a /Date(ms)/ or zone-less date) takes the slow path that
	// rewrites the object first.
	var direct T
	if reflect.TypeFor[T]().Kind() == reflect.Struct && json.Unmarshal(raw, &direct) == nil {
		return direct, nil
	}
	var zero T
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return zero, fmt.Errorf("decode %T: not a JSON object: %w", zero, err)
	}
	clean := make(map[string]json.RawMessage, len(m))
	for k, v := range m {
		if strings.Contains(k, "@") {
			continue
		}
		if isDateKey(k, m) {
			v = normalizeDate(v)
		}
		clean[k] = v
	}
	b, err := json.Marshal(clean)
	if err != nil {
		return zero, fmt.Errorf("decode %T: %w", zero, err)
	}
	var out T
	if err := json.Unmarshal(b, &out); err != nil {
		return zero, fmt.Errorf("decode %T: %w", zero, err)
	}
	return out, nil
}

// isDateKey reports whether k holds a DateTime: by its annotation when present, else by the When* naming
// Exchange uses for its timestamps.
func isDateKey(k string, m map[string]json.RawMessage) bool {
	for _, suffix := range []string{"@data.type", "@odata.type"} {
		if a, ok := m[k+suffix]; ok {
			s := strings.ToLower(string(a))
			return strings.Contains(s, "datetime")
		}
	}
	return len(k) > 4 && strings.EqualFold(k[:4], "when")
}

var reMSDate = regexp.MustCompile(`^/Date\((-?\d+)([+-]\d{4})?\)/$`)

// dateLayouts are the non-RFC 3339 forms normalizeDate accepts, all read as UTC.
var dateLayouts = []string{
	"2006-01-02T15:04:05.9999999",
	"2006-01-02T15:04:05",
	"1/2/2006 3:04:05 PM",
	"2006-01-02 15:04:05Z",
}

// normalizeDate rewrites a date value into RFC 3339 (or null) so that encoding/json's time.Time accepts it.
// Anything it does not recognise is passed through, so the decoder reports it.
func normalizeDate(v json.RawMessage) json.RawMessage {
	t := bytes.TrimSpace(v)
	var s string
	if len(t) == 0 || t[0] != '"' || json.Unmarshal(t, &s) != nil {
		return v
	}
	s = strings.TrimSpace(s)
	if s == "" {
		return json.RawMessage("null")
	}
	if _, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return v
	}
	if mm := reMSDate.FindStringSubmatch(s); mm != nil {
		ms, err := strconv.ParseInt(mm[1], 10, 64)
		if err == nil {
			return quoteTime(time.UnixMilli(ms).UTC())
		}
	}
	for _, l := range dateLayouts {
		if tm, err := time.Parse(l, s); err == nil {
			return quoteTime(tm.UTC())
		}
	}
	return v
}

func quoteTime(t time.Time) json.RawMessage {
	return json.RawMessage(strconv.Quote(t.Format(time.RFC3339Nano)))
}

// MailUsers lists mail users matching an OPATH filter ("" = all), streaming page by page. sel trims the
// properties returned ($select); the fields of MailUser not selected stay zero.
func (c *Client) MailUsers(ctx context.Context, filter string, sel ...string) iter.Seq2[MailUser, error] {
	params := map[string]any{"ResultSize": "Unlimited"}
	if filter != "" {
		params["Filter"] = filter
	}
	return Values[MailUser](ctx, c, Command{Name: "Get-MailUser", Params: params, Select: sel})
}

// GetMailUser reads one mail user by identity (ExternalDirectoryObjectId, GUID, address, alias). A missing
// object is an *Error of KindNotFound.
func (c *Client) GetMailUser(ctx context.Context, identity string, sel ...string) (MailUser, error) {
	cmd := Command{Name: "Get-MailUser", Params: map[string]any{"Identity": identity}, Select: sel}
	resp, err := c.Invoke(ctx, cmd)
	if err != nil {
		return MailUser{}, err
	}
	if len(resp.Values) == 0 {
		return MailUser{}, &Error{Kind: KindNotFound, HTTPStatus: resp.HTTPStatus, Cmdlet: cmd.Name, Identity: identity,
			RequestID: resp.RequestID, Message: "the service returned no object for this identity"}
	}
	mu, err := Decode[MailUser](resp.Values[0])
	if err != nil {
		return MailUser{}, fmt.Errorf("Get-MailUser %q: %w", identity, err)
	}
	return mu, nil
}

// CoveringRemoteDomain returns the remote domain whose settings apply to mail for domain: an exact
// DomainName first, then the longest "*.suffix" that matches, then "*" (the built-in Default); nil when
// none applies.
func CoveringRemoteDomain(rds []RemoteDomain, domain string) *RemoteDomain {
	domain = strings.ToLower(strings.TrimSpace(domain))
	var best *RemoteDomain
	bestLen := -1
	for i := range rds {
		dn := strings.ToLower(strings.TrimSpace(rds[i].DomainName))
		score := -1
		switch {
		case dn == domain && domain != "":
			score = 1 << 20
		case dn == "*":
			score = 0
		case strings.HasPrefix(dn, "*.") && strings.HasSuffix(domain, dn[1:]):
			score = len(dn)
		}
		if score > bestLen {
			best, bestLen = &rds[i], score
		}
	}
	return best
}
