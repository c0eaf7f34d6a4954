package graphapi

import (
	"encoding/base64"
	"encoding/json"
	"strconv"
	"strings"

	"github.com/exo-worker/worker/internal/sim/tenant"
)

// Delta queries (research §2): GET /users/delta (and /delta(), which the SDK calls), /groups/delta,
// /contacts/delta. A round is an initial query, pages joined by @odata.nextLink ($skiptoken), and a last page
// with @odata.deltaLink ($deltatoken); the next round starts from the deltaLink and returns what changed since.
// Tokens are self-contained: they carry the change sequence they stand for (graphmodel.go observe), the round's
// position, the $select of the initial query, and the epoch ExpireDeltaTokens invalidates.
// Not simulated: Prefer: return=minimal (changed objects always carry every selected property, which the
// service also does by default), members@delta, and $filter=id eq '...' on delta.

type deltaToken struct {
	E int64    `json:"e"`           // epoch
	K string   `json:"k"`           // object kind
	M string   `json:"m"`           // "i": a page of the initial round; "d": a round of changes
	S uint64   `json:"s,omitempty"` // changes after this sequence number (M "d")
	U uint64   `json:"u,omitempty"` // up to this one: the sequence observed when the round started
	A string   `json:"a,omitempty"` // position: last Guid (M "i") or last sequence number (M "d") returned
	Q []string `json:"q,omitempty"` // $select of the initial query; nil: the default set
	P bool     `json:"p,omitempty"` // the initial query said delta() rather than delta
}

func (t deltaToken) encode() string {
	b, _ := json.Marshal(t)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeDeltaToken(s string, kind tenant.ObjectKind) (deltaToken, *graphErr) {
	var t deltaToken
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err == nil {
		err = json.Unmarshal(b, &t)
	}
	if err != nil || t.K != string(kind) || t.M != "i" && t.M != "d" {
		return t, &graphErr{status: 400, code: "Request_BadRequest",
			msg: "The delta or skip token is malformed or was issued for another resource; start a new delta round without a token."}
	}
	return t, nil
}

func deltaLinkFor(base string, ent *gentity, paren bool, param string, t deltaToken) string {
	p := "/delta"
	if paren {
		p += "()"
	}
	return base + "/v1.0/" + ent.set + p + "?" + param + "=" + t.encode()
}

// graphDelta serves one delta page.
func (s *Service) graphDelta(req graphReq, ent *gentity, paren bool) (graphResp, *graphErr) {
	if _, ok := req.query["$top"]; ok {
		// Research §2 and gotcha 10: $top is not supported on user and group delta.
		return graphResp{}, &graphErr{status: 400, code: "Request_UnsupportedQuery", msg: "The $top query option is not supported with delta queries."}
	}
	if err := unsupportedOptions(req, "$orderby", "$expand", "$search", "$filter", "$count"); err != nil {
		return graphResp{}, err
	}
	gs := s.tenant.GraphSide()
	epoch, shape := gs.DeltaEpoch()
	var tok deltaToken
	skip, delta := req.query.Get("$skiptoken"), req.query.Get("$deltatoken")
	switch {
	case skip != "":
		t, err := decodeDeltaToken(skip, ent.kind)
		if err != nil {
			return graphResp{}, err
		}
		if t.E < epoch {
			return graphResp{}, deltaExpired(req.base, shape, ent, t)
		}
		tok = t
	case strings.EqualFold(delta, "latest"):
		// "Sync from now": no data, only a deltaLink at the current sequence.
		sel, err := parseSelect(ent.typ, ent.propNames(), req.query.Get("$select"))
		if err != nil {
			return graphResp{}, err
		}
		next := deltaToken{E: epoch, K: string(ent.kind), M: "d", S: gs.Observe(s.tenant), Q: sel, P: paren}
		return graphResp{status: 200, body: jobj{{"@odata.context", ent.context(req.base, sel)},
			{"@odata.deltaLink", deltaLinkFor(req.base, ent, paren, "$deltatoken", next)}, {"value", []jobj{}}}}, nil
	case delta != "":
		t, err := decodeDeltaToken(delta, ent.kind)
		if err != nil {
			return graphResp{}, err
		}
		if t.E < epoch {
			return graphResp{}, deltaExpired(req.base, shape, ent, t)
		}
		// A new round of changes: everything numbered after the token, up to what is there now.
		tok = deltaToken{E: t.E, K: t.K, M: "d", S: t.S, U: gs.Observe(s.tenant), Q: t.Q, P: t.P}
	default:
		// The initial round (also after a 410's Location, whose $deltatoken is empty).
		sel, err := parseSelect(ent.typ, ent.propNames(), req.query.Get("$select"))
		if err != nil {
			return graphResp{}, err
		}
		tok = deltaToken{E: epoch, K: string(ent.kind), M: "i", U: gs.Observe(s.tenant), Q: sel, P: paren}
	}
	sel := selection(tok.Q)
	size := s.graph().size()
	var values []jobj
	var nextTok *deltaToken
	if tok.M == "i" {
		page := s.tenant.SelectAfter(tok.A, size+1, func(o *tenant.Object) bool { return o.Kind == ent.kind })
		if len(page) > size {
			page = page[:size]
			n := tok
			n.A = page[len(page)-1].Guid
			nextTok = &n
		}
		xs := gs.ExtrasFor(page)
		for i := range page {
			values = append(values, ent.project(s.view(&page[i], xs[page[i].ID]), sel, true))
		}
	} else {
		after, _ := strconv.ParseUint(tok.A, 10, 64)
		chs := gs.Changes(ent.kind, max(tok.S, after), tok.U)
		if len(chs) > size {
			chs = chs[:size]
			n := tok
			n.A = strconv.FormatUint(chs[len(chs)-1].Seq, 10)
			nextTok = &n
		}
		reason := "changed" // users and groups go to deleted items first (restorable)
		if ent.kind == tenant.KindContact {
			reason = "deleted"
		}
		for _, c := range chs {
			if c.Removed {
				values = append(values, jobj{{"id", c.ID}, {"@removed", jobj{{"reason", reason}}}})
				continue
			}
			o, ok := s.tenant.Object(c.ID)
			if !ok {
				continue // deleted after the round started: the next round reports the removal
			}
			values = append(values, ent.project(s.view(&o, s.tenant.GraphExtras(o.ID)), sel, true))
		}
	}
	if values == nil {
		values = []jobj{}
	}
	body := jobj{{"@odata.context", ent.context(req.base, sel)}}
	if nextTok != nil {
		body = append(body, jkv{"@odata.nextLink", deltaLinkFor(req.base, ent, tok.P, "$skiptoken", *nextTok)})
	} else {
		done := deltaToken{E: tok.E, K: tok.K, M: "d", S: tok.U, Q: tok.Q, P: tok.P}
		body = append(body, jkv{"@odata.deltaLink", deltaLinkFor(req.base, ent, tok.P, "$deltatoken", done)})
	}
	body = append(body, jkv{"value", values})
	return graphResp{status: 200, body: body}, nil
}

// deltaExpired answers a token from before ExpireDeltaTokens in the selected shape.
func deltaExpired(base string, shape tenant.DeltaExpiry, ent *gentity, t deltaToken) *graphErr {
	switch shape {
	case tenant.DeltaExpiredGone:
		// Documented: 410 with a Location holding the initial query and an empty $deltatoken. The body's code
		// is not documented [I]; clients must go by the status.
		p := "/delta"
		if t.P {
			p += "()"
		}
		loc := base + "/v1.0/" + ent.set + p + "?"
		if len(t.Q) > 0 {
			loc += "$select=" + strings.Join(t.Q, ",") + "&"
		}
		loc += "$deltatoken="
		return &graphErr{status: 410, code: "Gone", msg: "The delta token is no longer valid. Restart the synchronization from the URL in the Location header.",
			header: map[string]string{"Location": loc}}
	case tenant.DeltaExpiredSyncStateNotFoundGone:
		return &graphErr{status: 410, code: "SyncStateNotFound", msg: "The sync state generation is not found; generation=149;"}
	case tenant.DeltaExpiredResyncRequired:
		return &graphErr{status: 400, code: "resyncRequired", msg: "The delta token is no longer valid, and the app must reset the sync state."}
	case tenant.DeltaExpiredSyncStateInvalid:
		return &graphErr{status: 400, code: "SyncStateInvalid", msg: "The sync state is invalid. Synchronize again from the beginning."}
	}
	return &graphErr{status: 400, code: "syncStateNotFound", msg: "The sync state generation is not found. The delta token is expired and data must be synchronized again."}
}
