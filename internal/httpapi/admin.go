package httpapi

import (
	"context"
	"net/http"
	"time"
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
