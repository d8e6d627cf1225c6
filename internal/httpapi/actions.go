package httpapi

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"

	"github.com/anfed/anfed/internal/coordination"
	"github.com/anfed/anfed/internal/node"
	"github.com/anfed/anfed/internal/trace"
)

// actions answers GET /v1/actions: the actions the node has seen, its
// decisions and the leases that hold as it sees them.
func (s *Server) actions(w http.ResponseWriter, r *http.Request) {
	v, err := s.n.Actions(r.Context())
	switch {
	case errors.Is(err, node.ErrNoCoordination):
		problem(w, http.StatusNotFound, "%v", err)
	case err != nil:
		problem(w, http.StatusServiceUnavailable, "read the coordination table: %v", err)
	default:
		writeJSON(w, http.StatusOK, v)
	}
}

// decide answers POST /v1/actions/{id}/{verb}: a person's accept or
// decline (with a counter) of a proposal the policy left to one. The
// body, optional, is {"reason":"...","by":"...","counter":"PT10M"}; the
// ingest's bearer token is required.
func (s *Server) decide(w http.ResponseWriter, r *http.Request) {
	if !s.authorized(w, r) {
		return
	}
	verb := r.PathValue("verb")
	if verb != "accept" && verb != "decline" {
		problem(w, http.StatusNotFound, "POST /v1/actions/{id}/accept or /v1/actions/{id}/decline, not %q", verb)
		return
	}
	req := node.DecideRequest{}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 16<<10))
	if err != nil {
		problem(w, http.StatusRequestEntityTooLarge, "the body is over 16 KiB")
		return
	}
	if len(b) > 0 {
		if err := json.Unmarshal(b, &req); err != nil {
			problem(w, http.StatusBadRequest, `the body is not {"reason":"...","by":"...","counter":"PT10M"}: %v`, err)
			return
		}
	}
	req.ID, req.Accept = r.PathValue("id"), verb == "accept"
	if req.Counter != "" && req.Accept {
		problem(w, http.StatusBadRequest, "a counter goes with decline")
		return
	}
	rec, err := s.n.DecideAction(r.Context(), req)
	switch {
	case errors.Is(err, node.ErrNoCoordination):
		problem(w, http.StatusNotFound, "%v", err)
	case errors.Is(err, coordination.ErrNotPending):
		problem(w, http.StatusConflict, "%v", err)
	case err != nil:
		problem(w, http.StatusBadRequest, "%v", err)
	default:
		writeJSON(w, http.StatusOK, rec)
	}
}

// traceOf answers GET /v1/trace/{id}: the causation chain of a signal (or
// of a correlation id, an action's) from what the node stored.
func (s *Server) traceOf(w http.ResponseWriter, r *http.Request) {
	tr, err := s.n.Trace(r.Context(), r.PathValue("id"))
	switch {
	case errors.Is(err, trace.ErrNotFound):
		problem(w, http.StatusNotFound, "%v", err)
	case err != nil:
		problem(w, http.StatusServiceUnavailable, "read the store: %v", err)
	default:
		writeJSON(w, http.StatusOK, tr)
	}
}
