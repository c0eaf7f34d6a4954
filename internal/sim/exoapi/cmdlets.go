package exoapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/exo-worker/worker/exo"

	"github.com/exo-worker/worker/internal/sim/tenant"
)

// This file is the cmdlet layer behind InvokeCommand: parameter binding (case-insensitive names,
// PowerShell-like binding errors), -Identity resolution, the Get-* family with -Filter/-ResultSize and
// paging, and Set-MailUser with the dir-sync write rules of research §5.

// cmdletCall is a decoded CmdletInput.
type cmdletCall struct {
	name     string                     // as sent
	params   map[string]json.RawMessage // keyed by lowercased parameter name
	sent     map[string]string          // lowercased name → name as sent
	canon    []byte                     // canonical form: compares a re-POSTed body with the first one
	identity string
}

// parseCmdletInput decodes `{"CmdletInput":{"CmdletName":..,"Parameters":{..}}}` (member names
// case-insensitive, Parameters optional).
func parseCmdletInput(body []byte) (*cmdletCall, *cmdletError) {
	var in struct {
		CmdletInput *struct {
			CmdletName string
			Parameters map[string]json.RawMessage
		}
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, badRequest("The request body is empty; send {\"CmdletInput\":{\"CmdletName\":\"...\",\"Parameters\":{...}}}.")
	}
	if err := json.Unmarshal(body, &in); err != nil {
		return nil, badRequest("The request body is not valid JSON for InvokeCommand: %v.", err)
	}
	if in.CmdletInput == nil || strings.TrimSpace(in.CmdletInput.CmdletName) == "" {
		return nil, badRequest("The request body has no CmdletInput.CmdletName; send {\"CmdletInput\":{\"CmdletName\":\"...\",\"Parameters\":{...}}}.")
	}
	c := &cmdletCall{
		name:   strings.TrimSpace(in.CmdletInput.CmdletName),
		params: map[string]json.RawMessage{},
		sent:   map[string]string{},
	}
	canonParams := map[string]any{}
	for k, v := range in.CmdletInput.Parameters {
		lk := strings.ToLower(k)
		if _, dup := c.params[lk]; dup {
			return nil, bindingErr(fmt.Sprintf("Cannot bind parameter because parameter '%s' is specified more than once.", k))
		}
		c.params[lk] = v
		c.sent[lk] = k
		var val any
		if err := json.Unmarshal(v, &val); err == nil {
			canonParams[lk] = val
		}
	}
	c.canon, _ = json.Marshal(map[string]any{"cmdlet": strings.ToLower(c.name), "params": canonParams})
	if v, ok := c.params["identity"]; ok {
		c.identity = rawText(v)
	}
	return c, nil
}

// rawText renders a JSON value as the text a cmdlet would see: strings unquoted, null empty.
func rawText(v json.RawMessage) string {
	var s string
	if err := json.Unmarshal(v, &s); err == nil {
		return s
	}
	t := strings.TrimSpace(string(v))
	if t == "null" {
		return ""
	}
	return t
}

// logParams decodes the parameters for the request log, keyed as sent.
func (c *cmdletCall) logParams() map[string]any {
	m := make(map[string]any, len(c.params))
	for lk, raw := range c.params {
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			v = string(raw)
		}
		m[c.sent[lk]] = v
	}
	return m
}

func (c *cmdletCall) has(p string) bool {
	v, ok := c.params[strings.ToLower(p)]
	return ok && strings.TrimSpace(string(v)) != "null"
}

// str binds a string parameter; numbers and booleans are accepted as their text, as PowerShell does.
func (c *cmdletCall) str(p string) (string, *cmdletError) {
	raw, ok := c.params[strings.ToLower(p)]
	if !ok {
		return "", nil
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return "", bindingErr(fmt.Sprintf("Cannot bind parameter '%s'. The value is not valid JSON.", p))
	}
	switch v := v.(type) {
	case nil:
		return "", nil
	case string:
		return v, nil
	case float64, bool:
		return strings.TrimSpace(string(raw)), nil
	}
	return "", bindingErr(fmt.Sprintf("Cannot bind parameter '%s'. Cannot convert the \"%s\" value of type \"Newtonsoft.Json.Linq.JToken\" to type \"System.String\".",
		p, strings.TrimSpace(string(raw))))
}

func (c *cmdletCall) boolean(p string) (bool, *cmdletError) {
	raw := c.params[strings.ToLower(p)]
	var v any
	_ = json.Unmarshal(raw, &v)
	switch v := v.(type) {
	case bool:
		return v, nil
	case string:
		switch strings.ToLower(strings.TrimSpace(v)) {
		case "true", "$true", "1":
			return true, nil
		case "false", "$false", "0":
			return false, nil
		}
	case float64:
		return v != 0, nil
	}
	return false, bindingErr(fmt.Sprintf("Cannot bind parameter '%s'. Cannot convert value \"%s\" to type \"System.Boolean\". "+
		"Boolean parameters accept only Boolean values and numbers, such as $True, $False, 1 or 0.", p, strings.Trim(string(raw), `"`)))
}

// stringList binds a multi-valued parameter: a JSON array, or one comma-separated string.
func (c *cmdletCall) stringList(p string) ([]string, *cmdletError) {
	raw := c.params[strings.ToLower(p)]
	var list []string
	if err := json.Unmarshal(raw, &list); err == nil {
		return list, nil
	}
	s, err := c.str(p)
	if err != nil {
		return nil, err
	}
	for part := range strings.SplitSeq(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			list = append(list, part)
		}
	}
	return list, nil
}

// resultSize binds -ResultSize: "Unlimited" (0 here) or a positive integer; the default is 1000.
func (c *cmdletCall) resultSize() (int, *cmdletError) {
	if !c.has("ResultSize") {
		return 1000, nil
	}
	s, err := c.str("ResultSize")
	if err != nil {
		return 0, err
	}
	if strings.EqualFold(strings.TrimSpace(s), "Unlimited") {
		return 0, nil
	}
	n, perr := strconv.Atoi(strings.TrimSpace(s))
	if perr != nil || n < 1 {
		return 0, bindingErr(fmt.Sprintf("Cannot bind parameter 'ResultSize'. Cannot convert value \"%s\" to type "+
			"\"Microsoft.Exchange.Data.Unlimited`1[System.UInt32]\". Error: \"The value must be 'Unlimited' or a positive integer.\"", s))
	}
	return n, nil
}

// commonParams are PowerShell's common parameters and the EXO ones every cmdlet takes; accepted, ignored.
var commonParams = []string{
	"ErrorAction", "WarningAction", "InformationAction", "Verbose", "Debug", "Confirm", "WhatIf",
	"DomainController", "IgnoreDefaultScope", "ReadFromDomainController", "Force",
}

type pageRequest struct {
	size     int    // page size (Prefer: odata.maxpagesize)
	after    string // Guid of the last object already returned
	returned int    // objects already returned on earlier pages (for ResultSize)
}

type cmdletOutput struct {
	values   []record
	warnings []string
	next     *pageRequest // non-nil: more pages; after/returned describe the continuation
}

type cmdletSpec struct {
	name   string
	params []string
	run    func(s *Service, c *cmdletCall, pg pageRequest) (*cmdletOutput, *cmdletError)
}

// cmdlets is the simulated command set, keyed by lowercased name.
var cmdlets = map[string]*cmdletSpec{}

func init() {
	getParams := []string{"Identity", "Filter", "ResultSize", "SortBy", "Anr"}
	for _, g := range []getSpec{
		{name: "Get-MailUser", shape: shapeMailUser, include: func(o *tenant.Object) bool { return o.RecipientType == "MailUser" }},
		{name: "Get-Mailbox", shape: shapeMailbox, rtd: true, include: func(o *tenant.Object) bool { return o.RecipientType == "UserMailbox" }},
		{name: "Get-MailContact", shape: shapeMailContact, include: func(o *tenant.Object) bool { return o.RecipientType == "MailContact" }},
		{name: "Get-DistributionGroup", shape: shapeDistributionGroup, rtd: true, include: func(o *tenant.Object) bool {
			return o.RecipientType == "MailUniversalDistributionGroup" || o.RecipientType == "MailUniversalSecurityGroup" ||
				o.RecipientType == "MailNonUniversalGroup"
		}},
		{name: "Get-Recipient", shape: shapeRecipient, rtd: true, include: func(o *tenant.Object) bool { return o.RecipientType != "" }},
	} {
		params := slices.Clone(getParams)
		if g.rtd {
			params = append(params, "RecipientTypeDetails")
		}
		if g.name == "Get-Recipient" {
			params = append(params, "IncludeSoftDeletedRecipients")
		}
		cmdlets[strings.ToLower(g.name)] = &cmdletSpec{name: g.name, params: params,
			run: func(s *Service, c *cmdletCall, pg pageRequest) (*cmdletOutput, *cmdletError) {
				return s.runGet(c, g, pg)
			}}
	}
	cmdlets["get-accepteddomain"] = &cmdletSpec{name: "Get-AcceptedDomain", params: []string{"Identity", "ResultSize"},
		run: (*Service).runGetAcceptedDomain}
	setParams := []string{"Identity", "UseMapiRichTextFormat", "MessageFormat", "MessageBodyFormat",
		"MacAttachmentFormat", "UsePreferMessageFormat"}
	setParams = append(setParams, syncedMailUserParams...)
	cmdlets["set-mailuser"] = &cmdletSpec{name: "Set-MailUser", params: setParams, run: (*Service).runSetMailUser}
}

// bindParams checks parameter names against the cmdlet's (common parameters are accepted too).
func (spec *cmdletSpec) bindParams(c *cmdletCall) *cmdletError {
	keys := make([]string, 0, len(c.params))
	for k := range c.params {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		known := slices.ContainsFunc(spec.params, func(p string) bool { return strings.EqualFold(p, k) }) ||
			slices.ContainsFunc(commonParams, func(p string) bool { return strings.EqualFold(p, k) })
		if !known {
			return paramNotFoundErr(c.sent[k])
		}
	}
	return nil
}

// runCmdlet binds and runs a call.
func (s *Service) runCmdlet(c *cmdletCall, pg pageRequest) (*cmdletOutput, *cmdletError) {
	spec, ok := cmdlets[strings.ToLower(c.name)]
	if !ok {
		return nil, commandNotFoundErr(c.name)
	}
	if err := spec.bindParams(c); err != nil {
		return nil, err
	}
	return spec.run(s, c, pg)
}

type getSpec struct {
	name    string
	shape   string
	rtd     bool // takes -RecipientTypeDetails
	include func(*tenant.Object) bool
}

// validRecipientTypeDetails are the values -RecipientTypeDetails accepts (research §4.2).
var validRecipientTypeDetails = []string{
	"DiscoveryMailbox", "DynamicDistributionGroup", "EquipmentMailbox", "GroupMailbox", "GuestMailUser",
	"LegacyMailbox", "LinkedMailbox", "LinkedRoomMailbox", "MailContact", "MailForestContact",
	"MailNonUniversalGroup", "MailUniversalDistributionGroup", "MailUniversalSecurityGroup", "MailUser",
	"PublicFolder", "PublicFolderMailbox", "RemoteEquipmentMailbox", "RemoteRoomMailbox", "RemoteSharedMailbox",
	"RemoteTeamMailbox", "RemoteUserMailbox", "RoomList", "RoomMailbox", "SchedulingMailbox", "SharedMailbox",
	"SharedWithMailUser", "TeamMailbox", "UserMailbox",
}

func (s *Service) runGet(c *cmdletCall, g getSpec, pg pageRequest) (*cmdletOutput, *cmdletError) {
	identity, err := c.str("Identity")
	if err != nil {
		return nil, err
	}
	filterText, err := c.str("Filter")
	if err != nil {
		return nil, err
	}
	anr, err := c.str("Anr")
	if err != nil {
		return nil, err
	}
	if identity != "" && (filterText != "" || anr != "") || filterText != "" && anr != "" {
		return nil, &cmdletError{status: 400, errorID: "AmbiguousParameterSet",
			exceptionType: "System.Management.Automation.ParameterBindingException",
			message:       "Parameter set cannot be resolved using the specified named parameters."}
	}
	var filter *compiledFilter
	if strings.TrimSpace(filterText) != "" {
		f, ferr := compileFilter(filterText, g.name)
		if ferr != nil {
			return nil, bindingErr(ferr.Error())
		}
		filter = f
	}
	size, err := c.resultSize()
	if err != nil {
		return nil, err
	}
	var rtds []string
	if g.rtd && c.has("RecipientTypeDetails") {
		list, err := c.stringList("RecipientTypeDetails")
		if err != nil {
			return nil, err
		}
		for _, v := range list {
			i := slices.IndexFunc(validRecipientTypeDetails, func(x string) bool { return strings.EqualFold(x, v) })
			if i < 0 {
				return nil, bindingErr(fmt.Sprintf("Cannot bind parameter 'RecipientTypeDetails'. Cannot convert value \"%s\" to type "+
					"\"Microsoft.Exchange.Data.Directory.Recipient.RecipientTypeDetails\". Error: \"Unable to match the identifier name %s "+
					"to a valid enumerator name. Specify one of the following enumerator names and try again:\n%s\"",
					v, v, strings.Join(validRecipientTypeDetails, ", ")))
			}
			rtds = append(rtds, validRecipientTypeDetails[i])
		}
	}
	keep := func(o *tenant.Object) bool {
		if !g.include(o) {
			return false
		}
		if len(rtds) > 0 && !slices.Contains(rtds, o.RecipientTypeDetails) {
			return false
		}
		if anr != "" && !anrMatch(o, anr) {
			return false
		}
		return filter.match(o)
	}

	t := s.tenant
	t.RLockFresh()
	defer t.RUnlock()
	if identity != "" {
		var hits []*tenant.Object
		for _, o := range t.ResolveLocked(identity) {
			if keep(o) {
				hits = append(hits, o)
			}
		}
		switch len(hits) {
		case 0:
			return nil, notFoundErr(identity)
		case 1:
			return &cmdletOutput{values: []record{recordFor(s.stale.View(hits[0], t.Now()), g.shape, t.InitialDomain())}}, nil
		default:
			return nil, ambiguousErr(identity)
		}
	}

	limit := pg.size
	if size > 0 {
		limit = min(limit, size-pg.returned)
	}
	softDeleted := false
	if g.name == "Get-Recipient" && c.has("IncludeSoftDeletedRecipients") {
		if softDeleted, err = c.boolean("IncludeSoftDeletedRecipients"); err != nil {
			return nil, err
		}
	}
	out := &cmdletOutput{}
	last, more := "", false
	// From the cursor on (a binary search, not a walk from the start), soft-deleted copies merged in by Guid
	// when asked for.
	objs := t.OrderAfterLocked(pg.after)
	if softDeleted {
		objs = mergeByGuid(objs, t.SoftDeletedAfterLocked(pg.after))
	}
	for _, o := range objs {
		if !keep(o) {
			continue
		}
		if len(out.values) >= limit {
			more = true
			break
		}
		out.values = append(out.values, recordFor(s.stale.View(o, t.Now()), g.shape, t.InitialDomain()))
		last = o.Guid
	}
	if more {
		total := pg.returned + len(out.values)
		if size > 0 && total >= size {
			out.warnings = append(out.warnings, "There are more results available than are currently displayed. "+
				"To view them, increase the value for the ResultSize parameter.")
		} else {
			out.next = &pageRequest{size: pg.size, after: last, returned: total}
		}
	}
	return out, nil
}

// anrMatch is ambiguous name resolution: a prefix of the name, alias, display name, first or last name,
// or primary address.
func anrMatch(o *tenant.Object, anr string) bool {
	p := strings.ToLower(strings.TrimSpace(anr))
	for _, v := range []string{o.Name, o.Alias, o.DisplayName, o.GivenName, o.Surname, o.PrimarySmtpAddress} {
		if p != "" && strings.HasPrefix(strings.ToLower(v), p) {
			return true
		}
	}
	return false
}

func (s *Service) runGetAcceptedDomain(c *cmdletCall, _ pageRequest) (*cmdletOutput, *cmdletError) {
	identity, err := c.str("Identity")
	if err != nil {
		return nil, err
	}
	out := &cmdletOutput{values: []record{}}
	for _, d := range s.tenant.AcceptedDomains() {
		if identity == "" || strings.EqualFold(identity, d.DomainName) {
			out.values = append(out.values, acceptedDomainRecord(d, s.tenant.ID()))
		}
	}
	if identity != "" && len(out.values) == 0 {
		return nil, notFoundErr(identity)
	}
	return out, nil
}

// syncedMailUserParams are the Set-MailUser parameters whose attributes Entra Connect synchronizes: on an
// IsDirSynced object EXO refuses them with the write-scope error. They come from the exo client's sourced
// table (exo.SyncOwned), so the simulator refuses exactly what the worker refuses to plan. UseMapiRichTextFormat
// (mAPIRecipient) and the message-format parameters (internetEncoding) are not synced and stay writable.
var syncedMailUserParams = exo.SyncOwnedParams("Set-MailUser")

// mailUserEdit is a bound Set-MailUser request: only the fields it sets are non-nil.
type mailUserEdit struct {
	richText            *string
	preferMessageFormat *bool
	displayName         *string
	alias               *string
	name                *string
	windowsEmail        *string
	external            *string
	hidden              *bool
	custom              [15]*string
	emailReplace        []string
	emailAdd            []string
	emailRemove         []string
	emailsTouched       bool
	syncedTouched       string // first synced parameter present (for the dir-sync refusal)
}

func (s *Service) bindSetMailUser(c *cmdletCall) (*mailUserEdit, *cmdletError) {
	e := &mailUserEdit{}
	for _, p := range syncedMailUserParams {
		if _, ok := c.params[strings.ToLower(p)]; ok && e.syncedTouched == "" {
			e.syncedTouched = p
		}
	}
	strParam := func(name string) (*string, *cmdletError) {
		if _, ok := c.params[strings.ToLower(name)]; !ok {
			return nil, nil
		}
		v, err := c.str(name)
		if err != nil {
			return nil, err
		}
		return &v, nil
	}
	var err *cmdletError
	if e.richText, err = strParam("UseMapiRichTextFormat"); err != nil {
		return nil, err
	}
	if _, ok := c.params["useprefermessageformat"]; ok {
		b, err := c.boolean("UsePreferMessageFormat")
		if err != nil {
			return nil, err
		}
		e.preferMessageFormat = &b
	}
	if e.richText != nil {
		canon, ok := tenant.CanonicalRichText(strings.TrimSpace(*e.richText))
		if !ok {
			return nil, bindingErr(fmt.Sprintf("Cannot bind parameter 'UseMapiRichTextFormat'. Cannot convert value \"%s\" to type "+
				"\"Microsoft.Exchange.Data.Directory.Recipient.UseMapiRichTextFormat\". Error: \"Unable to match the identifier name %s "+
				"to a valid enumerator name. Specify one of the following enumerator names and try again:\nNever, Always, UseDefaultSettings\"",
				*e.richText, *e.richText))
		}
		e.richText = &canon
	}
	for _, sp := range []struct {
		name string
		dst  **string
	}{{"DisplayName", &e.displayName}, {"Alias", &e.alias}, {"Name", &e.name}, {"WindowsEmailAddress", &e.windowsEmail},
		{"ExternalEmailAddress", &e.external}} {
		if *sp.dst, err = strParam(sp.name); err != nil {
			return nil, err
		}
	}
	for i := range e.custom {
		if e.custom[i], err = strParam(fmt.Sprintf("CustomAttribute%d", i+1)); err != nil {
			return nil, err
		}
	}
	if _, ok := c.params["hiddenfromaddresslistsenabled"]; ok {
		b, err := c.boolean("HiddenFromAddressListsEnabled")
		if err != nil {
			return nil, err
		}
		e.hidden = &b
	}
	if raw, ok := c.params["emailaddresses"]; ok {
		if err := e.bindEmailAddresses(raw); err != nil {
			return nil, err
		}
	}
	// MessageFormat & co. and the synced parameters the model does not hold are accepted and ignored.
	return e, nil
}

// bindEmailAddresses accepts a replacement array or an Add/Remove hashtable; a hashtable without
// "@odata.type": "#Exchange.GenericHashTable" fails as it does on the service (research §3).
func (e *mailUserEdit) bindEmailAddresses(raw json.RawMessage) *cmdletError {
	e.emailsTouched = true
	var list []string
	if err := json.Unmarshal(raw, &list); err == nil {
		e.emailReplace = list
		if list == nil {
			e.emailReplace = []string{}
		}
		return nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		e.emailReplace = []string{s}
		return nil
	}
	var ht map[string]json.RawMessage
	if err := json.Unmarshal(raw, &ht); err != nil {
		return bindingErr("Cannot bind parameter 'EmailAddresses'. Cannot convert the value to type \"Microsoft.Exchange.Data.ProxyAddressCollection\".")
	}
	typed := false
	for k, v := range ht {
		switch strings.ToLower(k) {
		case "@odata.type":
			typed = rawText(v) == "#Exchange.GenericHashTable"
		case "add", "remove":
			var vals []string
			if err := json.Unmarshal(v, &vals); err != nil {
				var one string
				if err := json.Unmarshal(v, &one); err != nil {
					return bindingErr(fmt.Sprintf("Cannot bind parameter 'EmailAddresses'. The '%s' value must be a string or an array of strings.", k))
				}
				vals = []string{one}
			}
			if strings.EqualFold(k, "add") {
				e.emailAdd = append(e.emailAdd, vals...)
			} else {
				e.emailRemove = append(e.emailRemove, vals...)
			}
		}
	}
	if !typed {
		return bindingErr("Cannot bind parameter 'EmailAddresses'. Cannot convert the \"Newtonsoft.Json.Linq.JObject\" value of type " +
			"\"Newtonsoft.Json.Linq.JObject\" to type \"Microsoft.Exchange.Data.ProxyAddressCollection\".")
	}
	return nil
}

func (s *Service) runSetMailUser(c *cmdletCall, _ pageRequest) (*cmdletOutput, *cmdletError) {
	identity, err := c.str("Identity")
	if err != nil {
		return nil, err
	}
	if strings.TrimSpace(identity) == "" {
		return nil, bindingErr("Cannot process command because of one or more missing mandatory parameters: Identity.")
	}
	edit, err := s.bindSetMailUser(c)
	if err != nil {
		return nil, err
	}

	t := s.tenant
	t.LockFresh()
	defer t.Unlock()
	var hits []*tenant.Object
	for _, o := range t.ResolveLocked(identity) {
		if o.IsMailUser() {
			hits = append(hits, o)
		}
	}
	switch len(hits) {
	case 0:
		return nil, notFoundErr(identity)
	case 1:
	default:
		return nil, ambiguousErr(identity)
	}
	o := hits[0]
	if o.IsDirSynced && edit.syncedTouched != "" {
		return nil, dirSyncErr("Set-MailUser", edit.syncedTouched, o.Name)
	}
	keys := o.IdentityKeys(t.InitialDomain())
	before := o.UseMapiRichTextFormat
	if changed := edit.apply(o); changed {
		if o.UseMapiRichTextFormat != before {
			s.stale.Remember(o.ID, before, t.Now(), s.faults.Get().StaleReads)
		}
		o.WhenChanged = t.Now().UTC()
		if !slices.Equal(keys, o.IdentityKeys(t.InitialDomain())) {
			t.MarkDirtyLocked()
		}
		return &cmdletOutput{values: []record{}}, nil
	}
	return &cmdletOutput{values: []record{}, warnings: []string{
		fmt.Sprintf("The command completed successfully but no settings of '%s' have been modified.", o.Name)}}, nil
}

// apply writes the edit to the object (mirroring EXO-mastered values to the Entra side, which the
// directory does for cloud objects) and reports whether anything changed.
func (e *mailUserEdit) apply(o *tenant.Object) bool {
	before := o.Clone()
	setStr := func(dst *string, v *string) {
		if v != nil {
			*dst = *v
		}
	}
	setStr(&o.UseMapiRichTextFormat, e.richText)
	if e.preferMessageFormat != nil {
		o.UsePreferMessageFormat = *e.preferMessageFormat
	}
	setStr(&o.DisplayName, e.displayName)
	setStr(&o.Alias, e.alias)
	setStr(&o.Name, e.name)
	setStr(&o.WindowsEmailAddress, e.windowsEmail)
	if e.external != nil {
		v := strings.TrimSpace(*e.external)
		if v != "" && !hasAddressPrefix(v) {
			v = "SMTP:" + v
		}
		o.ExternalEmailAddress = v
	}
	for i, v := range e.custom {
		setStr(&o.CustomAttributes[i], v)
	}
	if e.hidden != nil {
		o.HiddenFromAddressListsEnabled = *e.hidden
	}
	if e.emailsTouched {
		addrs := o.EmailAddresses
		if e.emailReplace != nil {
			addrs = slices.Clone(e.emailReplace)
		}
		addrs = slices.DeleteFunc(addrs, func(a string) bool {
			return slices.ContainsFunc(e.emailRemove, func(r string) bool { return sameProxy(a, r) })
		})
		for _, a := range e.emailAdd {
			if !slices.ContainsFunc(addrs, func(x string) bool { return sameProxy(x, a) }) {
				addrs = append(addrs, a)
			}
		}
		o.EmailAddresses = addrs
		for _, a := range addrs {
			if strings.HasPrefix(a, "SMTP:") {
				o.PrimarySmtpAddress = a[len("SMTP:"):]
			}
		}
	}
	changed := o.UseMapiRichTextFormat != before.UseMapiRichTextFormat || o.UsePreferMessageFormat != before.UsePreferMessageFormat ||
		o.DisplayName != before.DisplayName ||
		o.Alias != before.Alias || o.Name != before.Name || o.WindowsEmailAddress != before.WindowsEmailAddress ||
		o.ExternalEmailAddress != before.ExternalEmailAddress || o.CustomAttributes != before.CustomAttributes ||
		o.HiddenFromAddressListsEnabled != before.HiddenFromAddressListsEnabled ||
		!slices.Equal(o.EmailAddresses, before.EmailAddresses)
	if changed && !o.IsDirSynced {
		o.MailNickname = o.Alias
		o.Mail = o.PrimarySmtpAddress
		o.ProxyAddresses = slices.Clone(o.EmailAddresses)
	}
	return changed
}

// sameProxy compares proxy addresses: the address part case-insensitively; a value without a prefix
// matches any smtp entry.
func sameProxy(a, b string) bool {
	pa, aa, oka := strings.Cut(a, ":")
	pb, ab, okb := strings.Cut(b, ":")
	if !oka {
		pa, aa = "smtp", a
	}
	if !okb {
		pb, ab = "smtp", b
	}
	return strings.EqualFold(pa, pb) && strings.EqualFold(aa, ab)
}

// mergeByGuid merges two Guid-sorted lists into one.
func mergeByGuid(a, b []*tenant.Object) []*tenant.Object {
	if len(b) == 0 {
		return a
	}
	out := make([]*tenant.Object, 0, len(a)+len(b))
	for len(a) > 0 && len(b) > 0 {
		if a[0].Guid <= b[0].Guid {
			out, a = append(out, a[0]), a[1:]
		} else {
			out, b = append(out, b[0]), b[1:]
		}
	}
	return append(append(out, a...), b...)
}
