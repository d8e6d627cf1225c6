package httpapi

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/anfed/anfed/internal/inspect"
	"github.com/anfed/anfed/internal/intake"
	"github.com/anfed/anfed/internal/reject"
	"github.com/anfed/anfed/internal/signal"
	"github.com/anfed/anfed/internal/subject"
)

// CloudEvents HTTP binding media types.
const (
	mediaStructured = "application/cloudevents+json"
	mediaBatch      = "application/cloudevents-batch+json"
)

// Ingest bounds.
const (
	// MaxBatch is the most events one batch may hold.
	MaxBatch = 1000
	// answerTimeout bounds the wait for the node's answer to one request.
	answerTimeout = 10 * time.Second
)

// ingestSubject is where the ingest hands signals to the node's intake.
var ingestSubject = subject.IntakePrefix + ".http"

// maxBody bounds a request body: one signal's limit, or a batch's.
func maxBody(batch bool) int64 {
	if batch {
		return 16 << 20
	}
	return inspect.DefaultMaxBytes + 1024
}

// Result is the answer to one event of a batch.
type Result struct {
	Index int `json:"index"`
	// HTTP is the status this event would have had on its own.
	HTTP   int    `json:"http"`
	Source string `json:"source,omitempty"`
	ID     string `json:"id,omitempty"`
	signal.Answer
}

// BatchAnswer is the body of a 207 answer to a batch.
type BatchAnswer struct {
	Accepted int      `json:"accepted"` // accepted or duplicate: stored
	Rejected int      `json:"rejected"`
	Results  []Result `json:"results"`
}

// ingest takes CloudEvents over HTTP (structured, binary and batch modes
// of the CloudEvents HTTP binding) and hands each to the node's intake,
// answering only once intake answered: 202 when the signal is stored
// (accepted, or a duplicate of one stored before), 4xx with the reason
// when refused, 503 when the node cannot store it now.
func (s *Server) ingest(w http.ResponseWriter, r *http.Request) {
	if !s.authorized(w, r) {
		return
	}
	ct := r.Header.Get("Content-Type")
	media, _, _ := mime.ParseMediaType(ct)
	binary := r.Header.Get("Ce-Specversion") != ""
	switch {
	case media == mediaBatch:
		s.ingestBatch(w, r)
		return
	case media == mediaStructured:
	case binary:
	default:
		problem(w, http.StatusUnsupportedMediaType,
			"Content-Type %q is not a CloudEvent: send structured mode (Content-Type: %s, the event as JSON), binary mode (ce-specversion, ce-id, ce-source, ce-type ... headers, Content-Type: application/json, the data as body) or batch mode (Content-Type: %s, a JSON array of events)",
			ct, mediaStructured, mediaBatch)
		return
	}
	body, ok := readBody(w, r, false)
	if !ok {
		return
	}
	msg := nats.NewMsg(ingestSubject)
	if media == mediaStructured {
		msg.Data = body
	} else {
		if err := binaryHeaders(r.Header, msg.Header); err != nil {
			problem(w, http.StatusBadRequest, "%v", err)
			return
		}
		msg.Data = body
	}
	ans := s.publish(msg)
	code := ans.HTTPStatus()
	if code == http.StatusServiceUnavailable || code == http.StatusTooManyRequests {
		w.Header().Set("Retry-After", "1")
	}
	writeJSON(w, code, ans)
}

// authorized checks the ingest's bearer token, answering 401 or 403 when
// it fails.
func (s *Server) authorized(w http.ResponseWriter, r *http.Request) bool {
	return bearer(w, r, s.token, "the CloudEvents ingest", "http.token_file", "anfed ingest")
}

// bearer checks r's bearer token against token, the one in the policy's
// key (what it opens: off without one), answering 401 or 403 when it
// fails.
func bearer(w http.ResponseWriter, r *http.Request, token, what, key, realm string) bool {
	if token == "" {
		problem(w, http.StatusForbidden, "%s is off on this node: set %s in its policy file to a file holding a bearer token, and restart it", what, key)
		return false
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), []byte(token)) != 1 {
		w.Header().Set("WWW-Authenticate", `Bearer realm="`+realm+`"`)
		if !ok {
			problem(w, http.StatusUnauthorized, "missing bearer token: send Authorization: Bearer <the token in the node's %s>", key)
		} else {
			problem(w, http.StatusUnauthorized, "wrong bearer token: send the token in the node's %s", key)
		}
		return false
	}
	return true
}

func readBody(w http.ResponseWriter, r *http.Request, batch bool) ([]byte, bool) {
	limit := maxBody(batch)
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			what := "one signal"
			if batch {
				what = "a batch"
			}
			problem(w, http.StatusRequestEntityTooLarge, "request body over the %d-byte limit for %s: send smaller signals, or split the batch", limit, what)
		} else {
			problem(w, http.StatusBadRequest, "reading the request body: %v", err)
		}
		return nil, false
	}
	return b, true
}

// binaryHeaders turns a binary-mode request's ce- headers and
// Content-Type into the CloudEvents NATS binding's headers.
func binaryHeaders(from http.Header, to nats.Header) error {
	for k, vs := range from {
		lk := strings.ToLower(k)
		if lk == "content-type" && len(vs) > 0 {
			ct := vs[0]
			// "application/json; charset=utf-8" is application/json.
			if media, _, err := mime.ParseMediaType(ct); err == nil && media == "application/json" {
				ct = media
			}
			to.Set("content-type", ct)
			continue
		}
		if !strings.HasPrefix(lk, "ce-") || len(vs) == 0 {
			continue
		}
		if len(vs) > 1 {
			return fmt.Errorf("header %s is given %d times: send each CloudEvents attribute once", k, len(vs))
		}
		v := vs[0]
		if strings.ContainsRune(v, '%') {
			// The HTTP binding percent-encodes what a header value cannot carry.
			d, err := url.PathUnescape(v)
			if err != nil {
				return fmt.Errorf("header %s: bad percent-encoding in %q: %v", k, v, err)
			}
			v = d
		}
		to.Set(lk, v)
	}
	return nil
}

// publish hands one message to intake and waits for its answer.
func (s *Server) publish(msg *nats.Msg) signal.Answer {
	reply, err := s.nc.RequestMsg(msg, answerTimeout)
	if err != nil {
		return intake.Unavailable(err)
	}
	ans, err := signal.ParseAnswer(reply.Data)
	if err != nil {
		return intake.Unavailable(err)
	}
	return ans
}

// ingestBatch takes a JSON array of structured events and answers 207
// with one result per event, in order. The events go to intake in order,
// all before the first answer is awaited.
func (s *Server) ingestBatch(w http.ResponseWriter, r *http.Request) {
	body, ok := readBody(w, r, true)
	if !ok {
		return
	}
	var events []json.RawMessage
	if err := json.Unmarshal(body, &events); err != nil {
		problem(w, http.StatusBadRequest, "a batch is a JSON array of CloudEvents in JSON format: %v", err)
		return
	}
	if len(events) > MaxBatch {
		problem(w, http.StatusRequestEntityTooLarge, "%d events in one batch: at most %d, split it", len(events), MaxBatch)
		return
	}
	results := make([]Result, len(events))
	msgs := make([]*nats.Msg, len(events))
	for i, raw := range events {
		results[i].Index = i
		var id struct {
			Source string `json:"source"`
			ID     string `json:"id"`
		}
		if json.Unmarshal(raw, &id) == nil {
			results[i].Source, results[i].ID = id.Source, id.ID
		}
		if len(bytes.TrimSpace(raw)) == 0 || raw[0] != '{' {
			results[i].Answer = signal.Answer{Status: signal.StatusRejected, Reason: string(reject.Malformed), Error: "a batch element must be a CloudEvent: a JSON object"}
			results[i].HTTP = http.StatusBadRequest
			continue
		}
		msgs[i] = &nats.Msg{Subject: ingestSubject, Data: raw}
	}
	for i, ans := range intake.RequestAll(s.nc, msgs, answerTimeout) {
		if msgs[i] != nil {
			results[i].Answer = ans
		}
	}
	out := BatchAnswer{Results: results}
	for i := range results {
		if results[i].HTTP == 0 {
			results[i].HTTP = results[i].Answer.HTTPStatus()
		}
		if results[i].OK() {
			out.Accepted++
		} else {
			out.Rejected++
		}
	}
	writeJSON(w, http.StatusMultiStatus, out)
}
