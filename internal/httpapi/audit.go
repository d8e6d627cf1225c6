package httpapi

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/anfed/anfed/internal/audit"
)

// auditTrail answers GET /v1/audit: the audit trail's records as JSON
// Lines, one record a line, in the order they were stored; ?peer=,
// ?kind= (sent, action) and ?since= (RFC 3339, or a duration back from
// now) pick them.
func (s *Server) auditTrail(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	since, err := audit.ParseSince(q.Get("since"), time.Now())
	if err != nil {
		problem(w, http.StatusBadRequest, "%v", err)
		return
	}
	kind := q.Get("kind")
	if kind != "" && kind != audit.KindSent && kind != audit.KindAction {
		problem(w, http.StatusBadRequest, "kind %q: want %s or %s", kind, audit.KindSent, audit.KindAction)
		return
	}
	// Streamed as it is read: the status goes with the first record, so
	// a read that fails later ends the body early (and is logged).
	enc := json.NewEncoder(w)
	started := false
	err = s.n.EachAudit(r.Context(), audit.Filter{Peer: q.Get("peer"), Kind: kind, Since: since}, func(rec audit.Stored) error {
		if !started {
			w.Header().Set("Content-Type", "application/jsonl")
			started = true
		}
		return enc.Encode(rec)
	})
	switch {
	case err != nil && !started:
		problem(w, http.StatusServiceUnavailable, "read the audit trail: %v", err)
	case err != nil:
		s.log.Warn().Err(err).Msg("GET /v1/audit: the read ended early")
	case !started:
		w.Header().Set("Content-Type", "application/jsonl")
	}
}

// auditVerify answers GET /v1/audit/verify: every chain of the trail
// checked (audit.Verify); 200 whether it holds or not, its "problems"
// name each broken record.
func (s *Server) auditVerify(w http.ResponseWriter, r *http.Request) {
	rep, err := s.n.VerifyAudit(r.Context())
	if err != nil {
		problem(w, http.StatusServiceUnavailable, "read the audit trail: %v", err)
		return
	}
	writeJSON(w, http.StatusOK, struct {
		OK bool `json:"ok"`
		audit.Report
	}{rep.OK(), rep})
}
