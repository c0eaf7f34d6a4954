package graphapi

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strings"

	"github.com/exo-worker/worker/internal/sim/entra"
	"github.com/exo-worker/worker/internal/sim/reqlog"
)

// This file serves the application directory (entra.Directory) as Graph v1.0 does for an admin signed in
// with delegated scopes: /applications, /servicePrincipals, /servicePrincipals/{id}/appRoleAssignments and
// /servicePrincipals/{id}/appRoleAssignedTo (graph-docs-contrib application-post-applications,
// serviceprincipal-post-approleassignedto). $filter takes `prop eq 'value'` on appId and displayName,
// which is what worker setup sends; $select is accepted and ignored.

func (s *Service) registerApps(mux *http.ServeMux) {
	mux.HandleFunc("/v1.0/applications", s.handleApps)
	mux.HandleFunc("/v1.0/applications/{id}", s.handleApps)
	mux.HandleFunc("/v1.0/servicePrincipals", s.handleApps)
	mux.HandleFunc("/v1.0/servicePrincipals/{id}", s.handleApps)
	mux.HandleFunc("/v1.0/servicePrincipals/{id}/{rel}", s.handleApps)
	mux.HandleFunc("/v1.0/servicePrincipals/{id}/{rel}/{aid}", s.handleApps)
}

var eqFilter = regexp.MustCompile(`^\s*(appId|displayName)\s+eq\s+'((?:[^']|'')*)'\s*$`)

// requiredReadRoles are the application permissions a directory app needs to read each collection.
var requiredReadRoles = map[string][]string{
	"users": {"User.Read.All", "User.ReadWrite.All", "Directory.Read.All"}, "groups": {"Group.Read.All", "Directory.Read.All"},
	"contacts": {"OrgContact.Read.All", "Directory.Read.All"}, "domains": {"Domain.Read.All", "Directory.Read.All"},
	"subscribedSkus": {"Organization.Read.All", "Directory.Read.All"},
}

// authorizeRead refuses a directory app (one worker setup created) that was not granted a permission to read
// the collection, as Graph does (403 Authorization_RequestDenied). The simulated worker app keeps its fixed
// grants.
func (s *Service) authorizeRead(r *http.Request) *graphErr {
	c, err := s.auth.BearerClaims(r, graphAudience)
	if err != nil || c.Builtin || c.User {
		return nil
	}
	seg := strings.Split(strings.TrimPrefix(r.URL.Path, "/v1.0/"), "/")[0]
	need, ok := requiredReadRoles[seg]
	if !ok || slices.ContainsFunc(need, func(r string) bool { return slices.Contains(c.Roles, r) }) {
		return nil
	}
	return &graphErr{status: http.StatusForbidden, code: "Authorization_RequestDenied", msg: "Insufficient privileges to complete the operation."}
}

func (s *Service) handleApps(w http.ResponseWriter, r *http.Request) {
	reqID := reqlog.NewRequestID()
	lr := reqlog.RecordFrom(r.Context())
	lr.Service, lr.Query, lr.RequestID = "graph", r.URL.RawQuery, reqID
	lr.Header = loggedHeader(r.Header)
	fail := func(status int, code, msg string) {
		lr.Commit(status)
		w.Header().Set("request-id", reqID)
		writeAppJSON(w, status, map[string]any{"error": map[string]any{"code": code, "message": msg,
			"innerError": map[string]any{"request-id": reqID}}})
	}
	ok := func(status int, v any) {
		lr.Commit(status)
		w.Header().Set("request-id", reqID)
		if v == nil {
			w.WriteHeader(status)
			return
		}
		writeAppJSON(w, status, v)
	}
	c, err := s.auth.BearerClaims(r, graphAudience)
	if err != nil {
		ge := graphAuthError(err)
		fail(ge.status, ge.code, ge.msg)
		return
	}
	write := r.Method != http.MethodGet
	need := "Application.ReadWrite.All"
	if strings.Contains(r.URL.Path, "appRoleAssignedTo") {
		need = "AppRoleAssignment.ReadWrite.All"
	}
	allowed := c.User && (slices.Contains(c.Scopes, need) || (!write && slices.ContainsFunc(c.Scopes, func(s string) bool {
		return strings.HasPrefix(s, "Application.") || strings.HasPrefix(s, "Directory.")
	})))
	if !allowed {
		fail(http.StatusForbidden, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.")
		return
	}
	dir := s.auth.Apps
	var body map[string]json.RawMessage
	if write && r.Method != http.MethodDelete {
		raw, _ := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
		if err := json.Unmarshal(raw, &body); err != nil {
			fail(http.StatusBadRequest, "BadRequest", "Unable to read JSON request payload.")
			return
		}
	}
	dirErr := func(err error) {
		switch {
		case errors.Is(err, entra.ErrNotFound):
			fail(http.StatusNotFound, "Request_ResourceNotFound", "Resource '"+r.PathValue("id")+"' does not exist or one of its queried reference-property objects are not present.")
		case errors.Is(err, entra.ErrConflict):
			fail(http.StatusConflict, "Request_MultipleObjectsWithSameKeyValue", err.Error())
		default:
			fail(http.StatusBadRequest, "Request_BadRequest", err.Error())
		}
	}
	var prop, value string
	if f := r.URL.Query().Get("$filter"); f != "" {
		m := eqFilter.FindStringSubmatch(f)
		if m == nil {
			fail(http.StatusBadRequest, "Request_UnsupportedQuery", "Unsupported query: the simulator filters applications and servicePrincipals by appId or displayName eq only.")
			return
		}
		prop, value = m[1], strings.ReplaceAll(m[2], "''", "'")
	}
	match := func(appID, name string) bool {
		switch prop {
		case "appId":
			return strings.EqualFold(appID, value)
		case "displayName":
			return name == value
		}
		return true
	}
	apps := strings.HasPrefix(r.URL.Path, "/v1.0/applications")
	id, rel, aid := r.PathValue("id"), r.PathValue("rel"), r.PathValue("aid")
	switch {
	case apps && id == "" && r.Method == http.MethodGet:
		list := dir.Apps(func(a entra.Application) bool { return match(a.AppID, a.DisplayName) })
		ok(200, map[string]any{"@odata.context": s.requestBase(r) + "/v1.0/$metadata#applications", "value": orEmpty(list)})
	case apps && id == "" && r.Method == http.MethodPost:
		var a entra.Application
		if err := remarshal(body, &a); err != nil {
			fail(http.StatusBadRequest, "BadRequest", err.Error())
			return
		}
		got, err := dir.CreateApp(a)
		if err != nil {
			dirErr(err)
			return
		}
		ok(201, got)
	case apps && r.Method == http.MethodGet:
		a, err := dir.App(id)
		if err != nil {
			dirErr(err)
			return
		}
		ok(200, a)
	case apps && r.Method == http.MethodPatch:
		var a entra.Application
		if err := remarshal(body, &a); err != nil {
			fail(http.StatusBadRequest, "BadRequest", err.Error())
			return
		}
		patch := map[string]any{}
		for k := range body {
			patch[k] = true
		}
		if v, ok := body["displayName"]; ok {
			var name string
			_ = json.Unmarshal(v, &name)
			patch["displayName"] = name
		}
		if err := dir.PatchApp(id, patch, a.KeyCredentials, a.RequiredResourceAccess); err != nil {
			dirErr(err)
			return
		}
		ok(204, nil)
	case apps && r.Method == http.MethodDelete:
		if err := dir.DeleteApp(id); err != nil {
			dirErr(err)
			return
		}
		ok(204, nil)
	case id == "" && r.Method == http.MethodGet:
		list := dir.SPs(func(sp entra.ServicePrincipal) bool { return match(sp.AppID, sp.DisplayName) })
		ok(200, map[string]any{"@odata.context": s.requestBase(r) + "/v1.0/$metadata#servicePrincipals", "value": orEmpty(list)})
	case id == "" && r.Method == http.MethodPost:
		var in struct {
			AppID string `json:"appId"`
		}
		_ = remarshal(body, &in)
		sp, err := dir.CreateSP(in.AppID)
		if err != nil {
			dirErr(err)
			return
		}
		ok(201, sp)
	case rel == "" && r.Method == http.MethodGet:
		if strings.HasPrefix(id, "(appId=") || strings.HasPrefix(id, "appId=") {
			fail(http.StatusBadRequest, "Request_UnsupportedQuery", "the simulator addresses service principals by object id")
			return
		}
		sp, err := dir.SP(id)
		if err != nil {
			dirErr(err)
			return
		}
		ok(200, sp)
	case rel == "appRoleAssignments" && r.Method == http.MethodGet:
		ok(200, map[string]any{"value": orEmpty(dir.Assignments(id, false))})
	case rel == "appRoleAssignedTo" && r.Method == http.MethodGet && aid == "":
		ok(200, map[string]any{"value": orEmpty(dir.Assignments(id, true))})
	case rel == "appRoleAssignedTo" && r.Method == http.MethodPost && aid == "":
		var a entra.AppRoleAssignment
		if err := remarshal(body, &a); err != nil {
			fail(http.StatusBadRequest, "BadRequest", err.Error())
			return
		}
		got, err := dir.Assign(id, a)
		if err != nil {
			dirErr(err)
			return
		}
		ok(201, got)
	case rel == "appRoleAssignedTo" && r.Method == http.MethodDelete && aid != "":
		if err := dir.Unassign(id, aid); err != nil {
			dirErr(err)
			return
		}
		ok(204, nil)
	default:
		fail(http.StatusBadRequest, "BadRequest", "Unsupported request: "+r.Method+" "+r.URL.Path)
	}
}

func orEmpty[T any](l []T) []T {
	if l == nil {
		return []T{}
	}
	return l
}

func remarshal(in map[string]json.RawMessage, out any) error {
	b, err := json.Marshal(in)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, out)
}

func writeAppJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; odata.metadata=minimal; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
