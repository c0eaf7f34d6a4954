package doctor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/exo-worker/worker/exo"
)

// noChangeWarning is the stable part of Exchange's answer to a Set-* that changed nothing (setup-protocol §6).
const noChangeWarning = "completed successfully but no settings of"

var paramNotFound = regexp.MustCompile(`parameter name '([^']+)'`)

// exoFailure explains an Exchange refusal in RBAC terms: which grant, role entry or scope is missing.
func exoFailure(err error, cmdlet string) (detail, fix string) {
	var e *exo.Error
	if !errors.As(err, &e) {
		return err.Error(), "check the network checks above"
	}
	low := strings.ToLower(e.Message)
	switch {
	case e.Kind == exo.KindUnauthorized:
		return "Exchange refused the token: " + e.Message, "grant admin consent for Exchange.ManageAsApp (worker setup does it) and check the token check above"
	case strings.Contains(e.ExceptionType, "CommandNotFound") || strings.Contains(low, "is not recognized as"):
		return fmt.Sprintf("the app's Exchange roles do not include %s: %s", cmdlet, e.Message),
			"run worker setup to repair the role (it keeps exactly the cmdlets the jobs declare), or add the entry: Add-ManagementRoleEntry '<role>\\" + cmdlet + "'"
	case paramNotFound.MatchString(e.Message) && strings.Contains(e.ExceptionType, "ParameterBinding"):
		p := paramNotFound.FindStringSubmatch(e.Message)[1]
		return fmt.Sprintf("the role entry of %s does not allow parameter %s: %s", cmdlet, p, e.Message),
			fmt.Sprintf("run worker setup to repair the entry, or Set-ManagementRoleEntry '<role>\\%s' -AddParameter -Parameters %s", cmdlet, p)
	case e.Kind == exo.KindOutOfWriteScope:
		return "the object is outside the app's write scope: " + e.Message,
			"the management scope is narrower than the job's scope; run worker setup to set its filter, or check Get-ManagementScope"
	case strings.Contains(low, "cmdletaccessdenied") || strings.Contains(low, "isn't supported in this scenario") || e.Kind == exo.KindForbidden:
		return "the app has no usable Exchange role: " + e.Message, "add the app's service principal to its role group (worker setup does it); role changes can take up to 30 minutes to apply"
	}
	return e.Error(), "see the Exchange error above; worker setup repairs roles, scope and consent"
}

// readCmdletFor returns the Get-* that reads what a Set-* writes.
func readCmdletFor(set string) string {
	if noun, ok := strings.CutPrefix(set, "Set-"); ok {
		return "Get-" + noun
	}
	return ""
}

// checkEXO runs the Exchange probes: a read of one in-scope object, then for each written cmdlet a write of
// the values that object already holds (Exchange answers "no settings ... have been modified"), which
// proves role, parameters and write scope without changing anything; then the remote domains.
func (d *doc) checkEXO(ctx context.Context) {
	req := d.o.Req
	if len(req.Cmdlets) == 0 {
		d.add("exo read probe", Skip, "no enabled job calls Exchange", "")
		return
	}
	if d.o.EXO == nil {
		d.add("exo read probe", Skip, "no Exchange client", "")
		return
	}
	var writes []string
	for _, c := range req.CmdletNames() {
		if req.Cmdlets[c] != nil {
			writes = append(writes, c)
		}
	}
	read := "Get-MailUser"
	if len(writes) > 0 {
		read = readCmdletFor(writes[0])
	} else if _, ok := req.Cmdlets[read]; !ok {
		read = req.CmdletNames()[0]
	}
	sel := []string{"ExternalDirectoryObjectId", "Identity", "Name"}
	for _, w := range writes {
		for _, p := range req.Cmdlets[w] {
			if p != "Identity" && !slices.Contains(sel, p) {
				sel = append(sel, p)
			}
		}
	}
	params := map[string]any{"ResultSize": 1}
	if req.WriteFilter != "" && strings.HasPrefix(read, "Get-") {
		params["Filter"] = req.WriteFilter
	}
	resp, err := d.o.EXO.Invoke(ctx, exo.Command{Name: read, Params: params, Select: sel})
	if err != nil {
		detail, fix := exoFailure(err, read)
		d.add("exo read probe", Fail, detail, fix)
		d.add("exo write probe", Skip, "the read probe failed", "")
		d.checkRemoteDomains(ctx)
		return
	}
	if len(resp.Values) == 0 {
		d.add("exo read probe", Warn, fmt.Sprintf("%s -Filter \"%s\" found no object: nothing in scope yet", read, req.WriteFilter), "nothing to do until directory sync creates mail users; the write probe needs one")
		d.add("exo write probe", Skip, "no object in scope to probe", "")
		d.checkRemoteDomains(ctx)
		return
	}
	var obj map[string]any
	_ = json.Unmarshal(resp.Values[0], &obj)
	id, _ := obj["ExternalDirectoryObjectId"].(string)
	if id == "" {
		id, _ = obj["Identity"].(string)
	}
	name, _ := obj["Name"].(string)
	d.add("exo read probe", Pass, fmt.Sprintf("%s -ResultSize 1 in scope returned %s (%s)", read, name, id), "")
	if len(writes) == 0 {
		d.add("exo write probe", Skip, "no enabled job writes to Exchange", "")
	}
	for _, w := range writes {
		params := map[string]any{"Identity": id}
		var set []string
		for _, p := range req.Cmdlets[w] {
			if p == "Identity" {
				continue
			}
			v, ok := obj[p]
			if !ok || v == nil {
				continue
			}
			params[p] = v
			set = append(set, fmt.Sprintf("%s=%v", p, v))
		}
		if len(set) == 0 {
			d.add("exo write probe", Skip, fmt.Sprintf("%s returned none of the values %s writes", read, w), "")
			continue
		}
		resp, err := d.o.EXO.Invoke(ctx, exo.Command{Name: w, Params: params})
		if err != nil {
			detail, fix := exoFailure(err, w)
			d.add("exo write probe", Fail, detail, fix)
			continue
		}
		if !slices.ContainsFunc(resp.Warnings, func(s string) bool { return strings.Contains(s, noChangeWarning) }) {
			d.add("exo write probe", Warn, fmt.Sprintf("%s %s %s answered without Exchange's \"no settings modified\" warning: the value may have changed between read and write", w, name, strings.Join(set, " ")), "run worker doctor again; if it persists, compare Get-MailUser output with the job's plan")
			continue
		}
		d.add("exo write probe", Pass, fmt.Sprintf("%s %s %s: allowed, nothing modified (role, parameters and write scope hold)", w, name, strings.Join(set, " ")), "")
	}
	d.checkRemoteDomains(ctx)
}

// remoteDomain is the part of Get-RemoteDomain doctor reads.
type remoteDomain struct {
	Name        string `json:"Name"`
	DomainName  string `json:"DomainName"`
	TNEFEnabled *bool  `json:"TNEFEnabled"`
	ContentType string `json:"ContentType"`
}

// checkRemoteDomains reports remote domains that force TNEF: they override a mail user's
// UseMapiRichTextFormat unless its UsePreferMessageFormat is $true, so the fix would be written but not
// effective (Set-MailUser and Set-RemoteDomain docs).
func (d *doc) checkRemoteDomains(ctx context.Context) {
	const check = "remote domains"
	if _, ok := d.o.Req.Cmdlets["Get-RemoteDomain"]; !ok {
		d.add(check, Skip, "no enabled job reads remote domains", "")
		return
	}
	var rds []remoteDomain
	for v, err := range exo.Values[remoteDomain](ctx, d.o.EXO, exo.Command{Name: "Get-RemoteDomain"}) {
		if err != nil {
			detail, fix := exoFailure(err, "Get-RemoteDomain")
			d.add(check, Fail, detail, fix)
			return
		}
		rds = append(rds, v)
	}
	var forcing []string
	for _, r := range rds {
		if r.TNEFEnabled != nil && *r.TNEFEnabled {
			forcing = append(forcing, fmt.Sprintf("%s (%s)", r.Name, r.DomainName))
		}
	}
	if len(forcing) > 0 {
		d.add(check, Warn, fmt.Sprintf("TNEFEnabled is $true on %s: it overrides UseMapiRichTextFormat for mail users there unless their UsePreferMessageFormat is $true", strings.Join(forcing, ", ")),
			"keep jobs.meu-richtext.prefer_message_format true (the default), or Set-RemoteDomain -Identity <name> -TNEFEnabled $null")
		return
	}
	d.add(check, Pass, fmt.Sprintf("%d remote domains, none forces TNEF", len(rds)), "")
}

// checkGraph reads one user through Graph with the app's token: the audits' first request.
func (d *doc) checkGraph(ctx context.Context) {
	const check = "graph read probe"
	if len(d.o.Req.GraphRoles) == 0 {
		d.add(check, Skip, "no enabled job reads Graph", "")
		return
	}
	if d.o.Credential == nil || d.o.HTTPClient == nil {
		d.add(check, Skip, "no credential", "")
		return
	}
	tok, err := d.o.Credential.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{d.o.Endpoints.GraphScope}})
	if err != nil {
		d.add(check, Skip, "no Graph token (see the token check)", "")
		return
	}
	u := strings.TrimRight(d.o.Endpoints.GraphURL, "/") + "/v1.0/users?" + url.Values{"$top": {"1"}, "$select": {"id"}}.Encode()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	req.Header.Set("Authorization", "Bearer "+tok.Token)
	resp, err := d.o.HTTPClient.Do(req)
	if err != nil {
		d.add(check, Fail, err.Error(), "see the network checks above")
		return
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		var env struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		_ = json.Unmarshal(body, &env)
		d.add(check, Fail, fmt.Sprintf("GET /v1.0/users answered %d %s: %s (request-id %s)", resp.StatusCode, env.Error.Code, env.Error.Message, resp.Header.Get("request-id")),
			"grant admin consent for "+strings.Join(d.o.Req.GraphRoles, ", ")+" on Microsoft Graph (worker setup does it)")
		return
	}
	d.add(check, Pass, "GET /v1.0/users?$top=1 answered 200", "")
}
