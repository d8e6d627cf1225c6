package intent

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/anfed/anfed/internal/bridge"
)

// BasePath is the TMF921 v5 API's base on the node's HTTP server.
const BasePath = "/tmf-api/intentManagement/v5"

// maxBody bounds a request body.
const maxBody = 256 << 10

// apiTimeout bounds one request's work with the store.
const apiTimeout = 10 * time.Second

// tmfError is a TMF630 error body.
type tmfError struct {
	Code    string `json:"code"`
	Reason  string `json:"reason"`
	Message string `json:"message"`
	Status  string `json:"status"`
	Type    string `json:"@type"`
}

// Mount adds the API's routes to mux.
func (s *Service) Mount(mux bridge.Mux) {
	if s == nil {
		return
	}
	p := BasePath + "/intent"
	mux.Handle("POST "+p, s.authed(s.create))
	mux.Handle("GET "+p, s.authed(s.list))
	mux.Handle("GET "+p+"/{id}", s.authed(s.get))
	mux.Handle("PATCH "+p+"/{id}", s.authed(s.patch))
	mux.Handle("DELETE "+p+"/{id}", s.authed(s.remove))
	mux.Handle("GET "+p+"/{id}/intentReport", s.authed(s.reports))
	mux.Handle("GET "+p+"/{id}/intentReport/{report}", s.authed(s.report))
	s.hub.Mount(mux)
}

// fail answers a TMF630 error and counts it by reason.
func (s *Service) fail(w http.ResponseWriter, code int, reason, format string, args ...any) {
	s.metrics.WithLabelValues(reason).Inc()
	bridge.WriteJSON(w, code, tmfError{Code: strconv.Itoa(code), Reason: reason, Message: fmt.Sprintf(format, args...), Status: strconv.Itoa(code), Type: "Error"})
}

// authed checks the bearer token (intents.token_file, else
// http.token_file) before h, and bounds h's work by apiTimeout.
func (s *Service) authed(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.check(w, r, s.failer("unauthorized")) {
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), apiTimeout)
		defer cancel()
		h(w, r.WithContext(ctx))
	})
}

func subtleEqual(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

// badRequest answers err, a FieldError or a decoding error, as 400.
func (s *Service) badRequest(w http.ResponseWriter, err error) {
	var fe *FieldError
	if errors.As(err, &fe) && fe.Field != "" {
		s.fail(w, http.StatusBadRequest, "bad-field", "%v", err)
		return
	}
	s.fail(w, http.StatusBadRequest, "malformed", "%v", err)
}

// parseBody reads a request body of one of the media types and parses
// it, answering 415, 413 or 400 when it cannot.
func parseBody[T any](s *Service, w http.ResponseWriter, r *http.Request, parse func([]byte) (T, error), media ...string) (T, bool) {
	var zero T
	b, ok := s.readJSON(w, r, media...)
	if !ok {
		return zero, false
	}
	v, err := parse(b)
	if err != nil {
		s.badRequest(w, err)
		return zero, false
	}
	return v, true
}

func (s *Service) readJSON(w http.ResponseWriter, r *http.Request, media ...string) ([]byte, bool) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		m, _, _ := mime.ParseMediaType(ct)
		if !slices.Contains(media, m) {
			s.fail(w, http.StatusUnsupportedMediaType, "malformed", "Content-Type %q: send %s", ct, strings.Join(media, " or "))
			return nil, false
		}
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			s.fail(w, http.StatusRequestEntityTooLarge, "malformed", "request body over the %d-byte limit", maxBody)
		} else {
			s.fail(w, http.StatusBadRequest, "malformed", "reading the request body: %v", err)
		}
		return nil, false
	}
	return b, true
}

func (s *Service) href(id string) string {
	base := ""
	if s.d.BaseURL != nil {
		base = strings.TrimSuffix(s.d.BaseURL(), "/")
	}
	return base + BasePath + "/intent/" + id
}

// view is a record as the API shows it: a handled intent's id is its
// owner's id, a dot, and the owner's intent id.
func (s *Service) view(r *Record) Intent {
	in := r.Intent
	if in.Owner != s.self {
		in.ID = in.Owner + "." + in.ID
	}
	in.Href = s.href(in.ID)
	return in
}

// keyOfAPI is the KV key of an API id.
func (s *Service) keyOfAPI(id string) (string, bool) {
	owner, rest, dotted := strings.Cut(id, ".")
	if !dotted {
		return keyOf(s.self, id), idRE.MatchString(id)
	}
	return keyOf(owner, rest), operatorRE.MatchString(owner) && idRE.MatchString(rest)
}

func newID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "int-" + hex.EncodeToString(b[:])
}

func (s *Service) create(w http.ResponseWriter, r *http.Request) {
	in, ok := parseBody(s, w, r, ParseCreate, "application/json")
	if !ok {
		return
	}
	out, err := s.Create(r.Context(), in)
	var fe *FieldError
	switch {
	case errors.As(err, &fe):
		s.badRequest(w, err)
		return
	case errors.Is(err, errExists):
		s.fail(w, http.StatusConflict, "conflict", "an intent with id %q exists: pick another id, or leave id out", in.ID)
		return
	case err != nil:
		s.fail(w, http.StatusServiceUnavailable, "unavailable", "%v", err)
		return
	}
	w.Header().Set("Location", out.Href)
	bridge.WriteJSON(w, http.StatusCreated, out)
}

// Create stores a new intent of ours, valid (ParseCreate), and proposes
// it to its partner, as POST /intent does; it returns the intent as the
// API shows it. A partner that is not one of our peers is a FieldError.
func (s *Service) Create(ctx context.Context, in *Intent) (Intent, error) {
	if p := in.Expression.ExpressionValue.Partner; p == s.self {
		return Intent{}, fieldErr("expression.expressionValue.partner", "%q is this node's own operator: name the peer asked to take the intent on", p)
	} else if !slices.Contains(s.d.Peers, p) {
		return Intent{}, fieldErr("expression.expressionValue.partner", "%q is not a peer of this node: peers are %s", p, strings.Join(s.d.Peers, ", "))
	}
	if in.ID == "" {
		in.ID = newID()
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	in.Owner, in.Role = s.self, RoleOwner
	in.LifecycleStatus, in.StatusChangeDate, in.CreationDate, in.LastUpdate = Acknowledged, now, now, now
	in.StatusReason = "stored; proposed to " + in.Expression.ExpressionValue.Partner + ", no answer yet"
	rec := &Record{Intent: *in, Revision: 1}
	if err := s.store.create(ctx, rec); err != nil {
		return Intent{}, err
	}
	s.poke() // its validFor may end
	if err := s.propose(ctx, rec); err != nil {
		s.log.Warn().Err(err).Str("intent", in.ID).Msg("intent stored, not proposed yet: the next change or restart proposes it")
	}
	return s.view(rec), nil
}

// List is every intent, ours and those we handle, oldest first, as the
// API shows them.
func (s *Service) List(ctx context.Context) ([]Intent, error) {
	recs, err := s.store.all(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Intent, 0, len(recs))
	for _, rec := range recs {
		out = append(out, s.view(rec))
	}
	return out, nil
}

func (s *Service) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	for k := range q {
		switch k {
		case "lifecycleStatus", "role", "fields":
		default:
			s.fail(w, http.StatusBadRequest, "malformed", "unknown query parameter %q: filter with lifecycleStatus and role (owner, handler)", k)
			return
		}
	}
	ctx := r.Context()
	recs, err := s.store.all(ctx)
	if err != nil {
		s.fail(w, http.StatusServiceUnavailable, "unavailable", "%v", err)
		return
	}
	out := []Intent{}
	for _, rec := range recs {
		if v := q.Get("lifecycleStatus"); v != "" && !slices.Contains(strings.Split(v, ","), rec.Intent.LifecycleStatus) {
			continue
		}
		if v := q.Get("role"); v != "" && rec.Intent.Role != v {
			continue
		}
		out = append(out, s.view(rec))
	}
	w.Header().Set("X-Total-Count", strconv.Itoa(len(out)))
	w.Header().Set("X-Result-Count", strconv.Itoa(len(out)))
	bridge.WriteJSON(w, http.StatusOK, out)
}

// lookup reads the record the request's {id} names, answering 404.
func (s *Service) lookup(ctx context.Context, w http.ResponseWriter, id string) (*Record, string, bool) {
	key, ok := s.keyOfAPI(id)
	if !ok {
		s.fail(w, http.StatusNotFound, "not-found", "no intent %q: ids are letters, digits, - and _ (a peer's intent: <owner>.<id>)", id)
		return nil, "", false
	}
	rec, _, err := s.store.get(ctx, key)
	switch {
	case errors.Is(err, errNotFound):
		s.fail(w, http.StatusNotFound, "not-found", "no intent %q on this node (GET %s/intent lists them)", id, BasePath)
		return nil, "", false
	case err != nil:
		s.fail(w, http.StatusServiceUnavailable, "unavailable", "%v", err)
		return nil, "", false
	}
	return rec, key, true
}

func (s *Service) get(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if rec, _, ok := s.lookup(ctx, w, r.PathValue("id")); ok {
		bridge.WriteJSON(w, http.StatusOK, s.view(rec))
	}
}

// owned checks that this node owns rec: only an intent's owner changes it.
func (s *Service) owned(w http.ResponseWriter, rec *Record) bool {
	if rec.Intent.Owner != s.self {
		s.fail(w, http.StatusConflict, "conflict", "intent %s.%s belongs to %s: only its owner changes or terminates it", rec.Intent.Owner, rec.Intent.ID, rec.Intent.Owner)
		return false
	}
	return true
}

func (s *Service) patch(w http.ResponseWriter, r *http.Request) {
	p, ok := parseBody(s, w, r, ParsePatch, "application/merge-patch+json", "application/json")
	if !ok {
		return
	}
	ctx := r.Context()
	rec, key, ok := s.lookup(ctx, w, r.PathValue("id"))
	if !ok || !s.owned(w, rec) {
		return
	}
	var changed bool
	var err error
	rec, err = s.store.update(ctx, key, func(rec *Record) (bool, error) {
		if rec.Intent.LifecycleStatus == Terminated {
			return false, errTerminated
		}
		in, ch, err := p.Apply(rec.Intent)
		if err != nil {
			return false, err
		}
		now := time.Now().UTC().Truncate(time.Millisecond)
		in.LastUpdate = now
		if ch {
			// What the partner took on changed: it decides again.
			in.LifecycleStatus, in.StatusChangeDate, in.PartnerDecision = Acknowledged, now, nil
			in.StatusReason = "changed; proposed again to " + in.Expression.ExpressionValue.Partner
			rec.Revision++
		}
		rec.Intent, changed = in, ch
		return true, nil
	})
	var fe *FieldError
	switch {
	case errors.As(err, &fe):
		s.badRequest(w, err)
		return
	case errors.Is(err, errTerminated):
		s.fail(w, http.StatusConflict, "conflict", "intent %s is terminated: make a new one", r.PathValue("id"))
		return
	case err != nil:
		s.fail(w, http.StatusServiceUnavailable, "unavailable", "%v", err)
		return
	}
	if changed {
		s.poke() // its validFor may have changed
		if err := s.propose(ctx, rec); err != nil {
			s.log.Warn().Err(err).Str("intent", rec.Intent.ID).Msg("intent changed, not proposed yet")
		}
	}
	bridge.WriteJSON(w, http.StatusOK, s.view(rec))
}

var errTerminated = errors.New("terminated")

// remove terminates an intent (202, the intent as it ends; the partner
// is told), and removes a terminated one (204).
func (s *Service) remove(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	rec, key, ok := s.lookup(ctx, w, r.PathValue("id"))
	if !ok {
		return
	}
	if rec.Intent.LifecycleStatus == Terminated || (rec.Intent.Owner != s.self && rec.Intent.LifecycleStatus == Rejected) {
		if err := s.store.kv.Delete(ctx, key); err != nil {
			s.fail(w, http.StatusServiceUnavailable, "unavailable", "deleting intent %s: %v", r.PathValue("id"), err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if !s.owned(w, rec) {
		return
	}
	rec, err := s.terminate(ctx, key, "terminated by its owner; DELETE again to remove it", false)
	if err != nil {
		s.fail(w, http.StatusServiceUnavailable, "unavailable", "%v", err)
		return
	}
	bridge.WriteJSON(w, http.StatusAccepted, s.view(rec))
}

func (s *Service) reports(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	rec, _, ok := s.lookup(ctx, w, r.PathValue("id"))
	if !ok {
		return
	}
	out := make([]Report, 0, len(rec.Reports))
	for i := len(rec.Reports) - 1; i >= 0; i-- { // newest first
		out = append(out, s.reportView(rec, rec.Reports[i]))
	}
	bridge.WriteJSON(w, http.StatusOK, out)
}

func (s *Service) report(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	rec, _, ok := s.lookup(ctx, w, r.PathValue("id"))
	if !ok {
		return
	}
	for _, rp := range rec.Reports {
		if rp.ID == r.PathValue("report") {
			bridge.WriteJSON(w, http.StatusOK, s.reportView(rec, rp))
			return
		}
	}
	s.fail(w, http.StatusNotFound, "not-found", "intent %s has no report %q", r.PathValue("id"), r.PathValue("report"))
}

func (s *Service) reportView(rec *Record, rp Report) Report {
	in := s.view(rec)
	rp.Href = in.Href + "/intentReport/" + rp.ID
	rp.Intent = EntityRef{ID: in.ID, Href: in.Href, Name: in.Name, ReferredType: "Intent"}
	return rp
}
