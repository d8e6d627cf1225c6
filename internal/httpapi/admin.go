package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/anfed/anfed/internal/node"
)

// adminTimeout bounds an administrative request's work; the client going
// away does not cut a reload half-way.
const adminTimeout = time.Minute

// admin checks the administrative endpoints' bearer token
// (http.admin_token_file), answering 401 or 403 when it fails.
func (s *Server) admin(w http.ResponseWriter, r *http.Request) bool {
	return bearer(w, r, s.adminToken, "administration over HTTP (reload, peer disable and enable, drain)", "http.admin_token_file", "anfed admin")
}

// adminContext is the context of an administrative request's work.
func adminContext(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(r.Context()), adminTimeout)
}

// reload reads the node's policy file again and applies it (POST
// /v1/reload): 200 with what changed; 422 when the file has problems or
// holds a change a reload cannot make (nothing was changed; the error
// says what and where); 409 for a node started without a policy file.
func (s *Server) reload(w http.ResponseWriter, r *http.Request) {
	if !s.admin(w, r) {
		return
	}
	file := s.n.Config().File
	if file == "" {
		problem(w, http.StatusConflict, "this node was started from a policy built in code, not a file: there is nothing to reload")
		return
	}
	ctx, cancel := adminContext(r)
	defer cancel()
	res, err := s.n.ReloadFile(ctx, file)
	if err != nil {
		writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"error": err.Error(), "result": res})
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// drain announces a planned restart to the node's peers (POST /v1/drain,
// body {"for": "10m"}): they keep its conditions until then.
func (s *Server) drain(w http.ResponseWriter, r *http.Request) {
	if !s.admin(w, r) {
		return
	}
	var req struct {
		For string `json:"for"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4<<10)).Decode(&req); err != nil {
		problem(w, http.StatusBadRequest, `want a JSON body {"for": "10m"}: how long until the node is back: %v`, err)
		return
	}
	d, err := time.ParseDuration(req.For)
	if err != nil || d <= 0 || d > node.MaxPlannedRestart {
		problem(w, http.StatusBadRequest, "for %q: want a duration from 1s to %s, e.g. \"10m\"", req.For, node.MaxPlannedRestart)
		return
	}
	ctx, cancel := adminContext(r)
	defer cancel()
	told := s.n.Drain(ctx, d)
	writeJSON(w, http.StatusOK, map[string]any{"told": told, "within": d.String(), "until": time.Now().Add(d).UTC()})
}
