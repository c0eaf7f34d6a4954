package graphapi

import (
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/exo-worker/worker/internal/sim/tenant"
)

// This file serves group membership as Graph v1.0 does (group-post-members, group-delete-members,
// user-list-memberof, group-list-members):
//
//	POST   /groups/{id}/members/$ref          {"@odata.id": "https://graph.microsoft.com/v1.0/directoryObjects/{id}"} → 204
//	DELETE /groups/{id}/members/{id}/$ref     → 204
//	GET    /groups/{id}/members               ($select, $top, paging)
//	GET    /users/{id}/memberOf               ($select, $top, paging)
//	GET    /users/{id}/memberOf/{groupId}     → the group, or 404 when not a member
//
// with the service's errors: adding a member twice is 400 Request_BadRequest "One or more added object
// references already exist for the following modified properties: 'members'."; removing a non-member is 404
// Request_ResourceNotFound or 400 "One or more removed object references do not exist ..." (both are seen;
// tenant.SetRemoveNotMemberStatus picks one); an unknown group or member is 404. A membership change reaches
// the member's licences through the tenant's licensing model (tenant/membership.go).

// Messages of the real service, quoted by clients that treat them as "already done".
const (
	msgAddedRefExists    = "One or more added object references already exist for the following modified properties: 'members'."
	msgRemovedRefMissing = "One or more removed object references do not exist for the following modified properties: 'members'."
)

// readWriteBody reads the body of a write request (gunzipping it: the SDK compresses request bodies); nil for
// reads.
func readWriteBody(r *http.Request) ([]byte, *graphErr) {
	if r.Method == http.MethodGet || r.Method == http.MethodDelete || r.Body == nil {
		return nil, nil
	}
	var body io.Reader = io.LimitReader(r.Body, graphMaxBody)
	if strings.EqualFold(strings.TrimSpace(r.Header.Get("Content-Encoding")), "gzip") {
		zr, err := gzip.NewReader(body)
		if err != nil {
			return nil, &graphErr{status: 400, code: "BadRequest", msg: "The request body is not valid gzip: " + err.Error()}
		}
		defer func() { _ = zr.Close() }()
		body = io.LimitReader(zr, graphMaxBody)
	}
	b, err := io.ReadAll(body)
	if err != nil {
		return nil, &graphErr{status: 400, code: "BadRequest", msg: "The request body could not be read: " + err.Error()}
	}
	return b, nil
}

// routeMembership serves the membership paths; ok is false for any other path.
func (s *Service) routeMembership(req graphReq, segs []string) (graphResp, *graphErr, bool) {
	switch {
	case len(segs) >= 3 && strings.EqualFold(segs[0], "groups") && strings.EqualFold(segs[2], "members"):
		gid := segs[1]
		if req.method != http.MethodGet {
			if gerr := s.authorizeMemberWrite(req.header); gerr != nil {
				return graphResp{}, gerr, true
			}
		}
		switch {
		case len(segs) == 4 && segs[3] == "$ref" && req.method == http.MethodPost:
			resp, err := s.addMember(gid, req.body)
			return resp, err, true
		case len(segs) == 5 && segs[4] == "$ref" && req.method == http.MethodDelete:
			resp, err := s.removeMember(gid, segs[3])
			return resp, err, true
		case len(segs) == 3 && req.method == http.MethodGet:
			resp, err := s.listRelated(req, gid, tenant.KindGroup, s.tenant.Members)
			return resp, err, true
		case len(segs) >= 4:
			return graphResp{}, &graphErr{status: 405, code: "Request_BadRequest",
				msg: fmt.Sprintf("The simulated tenant does not support %s on %s.", req.method, req.path)}, true
		}
	case len(segs) >= 3 && strings.EqualFold(segs[0], "users") && strings.EqualFold(segs[2], "memberOf") && req.method == http.MethodGet:
		uid := segs[1]
		switch len(segs) {
		case 3:
			resp, err := s.listRelated(req, uid, tenant.KindUser, s.tenant.MemberOf)
			return resp, err, true
		case 4:
			resp, err := s.memberOfOne(req, uid, segs[3])
			return resp, err, true
		}
	}
	return graphResp{}, nil, false
}

func resourceNotFound(id string) *graphErr {
	return &graphErr{status: 404, code: "Request_ResourceNotFound",
		msg: fmt.Sprintf("Resource '%s' does not exist or one of its queried reference-property objects are not present.", id)}
}

// refID reads the object id out of {"@odata.id": ".../directoryObjects/{id}"} (also /users/{id}, /groups/{id}).
func refID(body []byte) (string, *graphErr) {
	var in map[string]any
	if err := json.Unmarshal(body, &in); err != nil {
		return "", &graphErr{status: 400, code: "BadRequest", msg: "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format."}
	}
	raw, _ := in["@odata.id"].(string)
	u, err := url.Parse(raw)
	if raw == "" || err != nil {
		return "", &graphErr{status: 400, code: "Request_BadRequest", msg: "Invalid URL format specified in @odata.id."}
	}
	parts := strings.Split(strings.Trim(u.Path, "/"), "/")
	if len(parts) < 2 {
		return "", &graphErr{status: 400, code: "Request_BadRequest", msg: "Invalid URL format specified in @odata.id."}
	}
	switch strings.ToLower(parts[len(parts)-2]) {
	case "directoryobjects", "users", "groups", "contacts", "serviceprincipals", "devices":
	default:
		return "", &graphErr{status: 400, code: "Request_BadRequest", msg: "Invalid URL format specified in @odata.id."}
	}
	return parts[len(parts)-1], nil
}

func (s *Service) addMember(gid string, body []byte) (graphResp, *graphErr) {
	mid, gerr := refID(body)
	if gerr != nil {
		return graphResp{}, gerr
	}
	switch err := s.tenant.AddMember(gid, mid); {
	case err == nil:
		return graphResp{status: http.StatusNoContent}, nil
	case errors.Is(err, tenant.ErrAlreadyMember):
		return graphResp{}, &graphErr{status: 400, code: "Request_BadRequest", msg: msgAddedRefExists}
	case errors.Is(err, tenant.ErrNoGroup):
		return graphResp{}, resourceNotFound(gid)
	default:
		return graphResp{}, resourceNotFound(mid)
	}
}

func (s *Service) removeMember(gid, mid string) (graphResp, *graphErr) {
	switch err := s.tenant.RemoveMember(gid, mid); {
	case err == nil:
		return graphResp{status: http.StatusNoContent}, nil
	case errors.Is(err, tenant.ErrNotMember):
		if s.tenant.RemoveNotMemberStatus() == 400 {
			return graphResp{}, &graphErr{status: 400, code: "Request_BadRequest", msg: msgRemovedRefMissing}
		}
		return graphResp{}, resourceNotFound(mid)
	default:
		return graphResp{}, resourceNotFound(gid)
	}
}

// entityOf is the entity set an object is rendered with inside a directoryObject collection.
func entityOf(k tenant.ObjectKind) *gentity {
	switch k {
	case tenant.KindGroup:
		return groupEntity
	case tenant.KindContact:
		return contactEntity
	}
	return userEntity
}

// renderDirectoryObject renders a related object with its @odata.type, as directoryObject collections do.
func (s *Service) renderDirectoryObject(o *tenant.Object, rawSelect string) (jobj, *graphErr) {
	ent := entityOf(o.Kind)
	sel, err := parseSelect(ent.typ, ent.propNames(), rawSelect)
	if err != nil {
		return nil, err
	}
	out := jobj{{"@odata.type", "#" + ent.typ}}
	return append(out, ent.project(s.view(o, s.tenant.GraphExtras(o.ID)), sel, true)...), nil
}

// listRelated serves /groups/{id}/members and /users/{id}/memberOf: the related ids related(id) returns,
// rendered, paged by $top and $skiptoken.
func (s *Service) listRelated(req graphReq, id string, kind tenant.ObjectKind, related func(string) []string) (graphResp, *graphErr) {
	if err := unsupportedOptions(req, "$search", "$orderby", "$expand", "$skip", "$filter"); err != nil {
		return graphResp{}, err
	}
	if o, ok := s.tenant.Object(id); !ok || o.Kind != kind {
		return graphResp{}, resourceNotFound(id)
	}
	top, gerr := parseTop(req, s.graph().size())
	if gerr != nil {
		return graphResp{}, gerr
	}
	after := ""
	if tok := req.query.Get("$skiptoken"); tok != "" {
		if after, gerr = decodeListToken(tok); gerr != nil {
			return graphResp{}, gerr
		}
	}
	ids := related(id) // sorted
	var page []jobj
	last, more := "", false
	for _, rid := range ids {
		if rid <= after {
			continue
		}
		if len(page) == top {
			more = true
			break
		}
		o, ok := s.tenant.Object(rid)
		if !ok {
			continue
		}
		v, gerr := s.renderDirectoryObject(&o, req.query.Get("$select"))
		if gerr != nil {
			return graphResp{}, gerr
		}
		page = append(page, v)
		last = rid
	}
	if page == nil {
		page = []jobj{}
	}
	body := jobj{{"@odata.context", req.base + "/v1.0/$metadata#directoryObjects"}}
	if more {
		body = append(body, jkv{"@odata.nextLink", nextLink(req.base, req.path, req.rawQuery, encodeListToken(last))})
	}
	body = append(body, jkv{"value", page})
	return graphResp{status: 200, body: body}, nil
}

// memberOfOne serves GET /users/{id}/memberOf/{groupId}: the group when the user is a direct member of it, 404
// otherwise.
func (s *Service) memberOfOne(req graphReq, uid, gid string) (graphResp, *graphErr) {
	if o, ok := s.tenant.Object(uid); !ok || o.Kind != tenant.KindUser {
		return graphResp{}, resourceNotFound(uid)
	}
	g, ok := s.tenant.Object(gid)
	if !ok || !s.tenant.IsMember(gid, uid) {
		return graphResp{}, resourceNotFound(gid)
	}
	v, gerr := s.renderDirectoryObject(&g, req.query.Get("$select"))
	if gerr != nil {
		return graphResp{}, gerr
	}
	body := append(jobj{{"@odata.context", req.base + "/v1.0/$metadata#directoryObjects/$entity"}}, v...)
	return graphResp{status: 200, body: body}, nil
}

// memberWriteRoles are the application permissions that allow changing a group's members.
var memberWriteRoles = []string{"GroupMember.ReadWrite.All", "Group.ReadWrite.All", "Directory.ReadWrite.All"}

// authorizeMemberWrite refuses a membership write by a directory app (one worker setup created) without a
// permission to make it, as Graph does (403 Authorization_RequestDenied). The simulated worker app and
// delegated admin tokens keep their grants; $batch items carry no token of their own and were authorized
// with their envelope.
func (s *Service) authorizeMemberWrite(h http.Header) *graphErr {
	c, err := s.auth.BearerClaims(&http.Request{Header: h}, graphAudience)
	if err != nil || c.Builtin || c.User {
		return nil
	}
	for _, r := range memberWriteRoles {
		if slices.Contains(c.Roles, r) {
			return nil
		}
	}
	return &graphErr{status: http.StatusForbidden, code: "Authorization_RequestDenied", msg: "Insufficient privileges to complete the operation."}
}
