// Package httpapi is a node's HTTP face, on loopback by default: health
// and readiness, Prometheus metrics, a JSON API (peers, conditions, recent
// rejects), a CloudEvents HTTP ingest for producers that speak HTTP, and a
// small live dashboard fed by server-sent events. It lives outside the
// node and reads it through its exported methods; see docs/operations.md.
package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"

	"github.com/anfed/anfed/internal/conditions"
	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/metrics"
	"github.com/anfed/anfed/internal/node"
	"github.com/anfed/anfed/internal/observe"
)

// Options configure a Server.
type Options struct {
	// Listen is host:port; port 0 picks a free port.
	Listen string
	// TokenFile holds the ingest's bearer token; "" turns the ingest off.
	TokenFile string
	// AdminTokenFile holds the administrative endpoints' bearer token
	// (reload, a peer's disable and enable, drain); "" turns them off.
	AdminTokenFile string
	Log            zerolog.Logger
	// Tick is how often the dashboard's state is refreshed (default 1s).
	Tick time.Duration
}

// Server serves one node over HTTP. Make it with New, give Observer to
// the node before the node starts, then Start it with the started node;
// Stop it before stopping the node.
type Server struct {
	opts    Options
	log     zerolog.Logger
	metrics *metrics.Metrics
	rejects *rejectRing
	hub     *hub

	n          *node.Node
	token      string
	adminToken string
	nc         *nats.Conn
	ln         net.Listener
	srv        *http.Server
	stopWatch  func()
	cancel     context.CancelFunc
	done       sync.WaitGroup

	// loopback: the server listens on loopback only, and answers only
	// requests addressed to an IP address or localhost.
	loopback bool

	mu    sync.Mutex
	links map[string]*linkState

	// routes are added by Handle (the bridges'), before Start.
	routes []route
}

type route struct {
	pattern string
	h       http.Handler
}

// Handle adds a route, such as a bridge's (internal/bridge), to the
// server's; call it before Start.
func (s *Server) Handle(pattern string, h http.Handler) {
	s.routes = append(s.routes, route{pattern, h})
}

// linkState is what the server tracks of a peer between ticks.
type linkState struct {
	up      bool
	since   time.Time
	last    metrics.Counts
	at      time.Time
	rateIn  float64
	rateOut float64
}

// New returns a server; nothing listens until Start.
func New(opts Options) *Server {
	if opts.Tick <= 0 {
		opts.Tick = time.Second
	}
	s := &Server{opts: opts, log: opts.Log.With().Str("component", "http").Logger(), metrics: metrics.New(),
		rejects: newRejectRing(256), hub: newHub(), links: map[string]*linkState{}}
	s.rejects.notify = s.hub.reject
	return s
}

// Observer is what the node's pipelines must report to (node.WithObserver).
func (s *Server) Observer() observe.Observer {
	return observe.Multi{s.metrics.Observer(), s.rejects}
}

// Metrics are the server's metrics.
func (s *Server) Metrics() *metrics.Metrics { return s.metrics }

// Start listens on opts.Listen and serves n, which must be started.
func (s *Server) Start(n *node.Node) error {
	s.n = n
	if s.opts.TokenFile != "" {
		tok, err := config.ReadToken(s.opts.TokenFile)
		if err != nil {
			return fmt.Errorf("http.token_file: %w", err)
		}
		s.token = tok
	}
	if s.opts.AdminTokenFile != "" {
		tok, err := config.ReadToken(s.opts.AdminTokenFile)
		if err != nil {
			return fmt.Errorf("http.admin_token_file: %w", err)
		}
		s.adminToken = tok
	}
	ln, err := net.Listen("tcp", s.opts.Listen)
	if err != nil {
		return fmt.Errorf("http.listen %s: %w (set http.listen to a free port, or \"\" for no HTTP server)", s.opts.Listen, err)
	}
	stop, err := s.metrics.Attach(n)
	if err != nil {
		ln.Close()
		return fmt.Errorf("metrics: %w", err)
	}
	nc, err := n.Connect(nats.Name("anfed-http-ingest"))
	if err != nil {
		stop()
		ln.Close()
		return err
	}
	s.ln, s.stopWatch, s.nc = ln, stop, nc
	if host, _, err := net.SplitHostPort(s.opts.Listen); err == nil {
		ip := net.ParseIP(host)
		s.loopback = host == "localhost" || (ip != nil && ip.IsLoopback())
	}
	now := time.Now()
	for _, p := range n.Config().Peers {
		s.links[p.ID] = &linkState{up: n.LinkUp(p.ID), since: now, at: now, last: s.metrics.Counts(p.ID)}
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.srv = &http.Server{Handler: s.hostCheck(s.Handler()), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		BaseContext: func(net.Listener) context.Context { return ctx }}
	s.done.Add(2)
	go func() {
		defer s.done.Done()
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error().Err(err).Msg("http server stopped")
		}
	}()
	go func() {
		defer s.done.Done()
		s.tick(ctx)
	}()
	s.log.Info().Str("url", s.URL()).Msg("http: serving health, metrics, API and dashboard")
	return nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() string {
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// URL is the dashboard's URL.
func (s *Server) URL() string { return "http://" + s.Addr() + "/" }

// Stop ends the server: open event streams are closed, requests in
// flight get a few seconds to finish.
func (s *Server) Stop() {
	if s.srv == nil {
		return
	}
	s.cancel() // ends the event streams, whose requests never finish
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = s.srv.Shutdown(ctx)
	s.done.Wait()
	s.stopWatch()
	s.nc.Close()
	s.srv = nil
}

// Handler is the server's routes.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.metrics.Registry(), promhttp.HandlerOpts{ErrorLog: promLog{s.log}}))
	mux.HandleFunc("GET /v1/peers", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, http.StatusOK, s.peers(r.Context())) })
	mux.HandleFunc("GET /v1/conditions", s.conditions)
	mux.HandleFunc("GET /v1/rejects", s.recentRejects)
	mux.HandleFunc("GET /v1/stream", s.stream)
	mux.HandleFunc("POST /v1/events", s.ingest)
	mux.HandleFunc("GET /v1/actions", s.actions)
	mux.HandleFunc("POST /v1/actions/{id}/{verb}", s.decide)
	mux.HandleFunc("GET /v1/trace/{id}", s.traceOf)
	mux.HandleFunc("GET /v1/audit", s.auditTrail)
	mux.HandleFunc("GET /v1/audit/verify", s.auditVerify)
	mux.HandleFunc("POST /v1/reload", s.reload)
	mux.HandleFunc("POST /v1/drain", s.drain)
	mux.HandleFunc("GET /v1/", func(w http.ResponseWriter, r *http.Request) {
		problem(w, http.StatusNotFound, "no such endpoint %s: see docs/operations.md (GET /v1/peers, /v1/conditions, /v1/rejects, /v1/stream, /v1/actions, /v1/trace/{id}, /v1/audit, /v1/audit/verify; POST /v1/events, /v1/actions/{id}/accept|decline, /v1/reload, /v1/drain)", r.URL.Path)
	})
	mux.Handle("GET /", dashboard())
	for _, r := range s.routes {
		mux.Handle(r.pattern, r.h)
	}
	return mux
}

// hostCheck refuses, on a loopback listener, requests addressed to a
// name other than localhost: a web page whose DNS name is rebound to
// 127.0.0.1 must not read the node's API from a browser on this machine.
func (s *Server) hostCheck(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if hp, _, err := net.SplitHostPort(host); err == nil {
			host = hp
		}
		host = strings.TrimSuffix(strings.Trim(host, "[]"), ".")
		if !s.loopback || host == "localhost" || net.ParseIP(host) != nil {
			h.ServeHTTP(w, r)
			return
		}
		problem(w, http.StatusMisdirectedRequest, "Host %q: this node's HTTP server listens on loopback and answers requests for an IP address or localhost only (a defence against DNS rebinding); use http://%s/, or put a proxy in front", r.Host, s.Addr())
	})
}

type promLog struct{ log zerolog.Logger }

func (l promLog) Println(v ...any) { l.log.Warn().Msg(fmt.Sprint(v...)) }

func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if err := s.n.Readiness(); err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintf(w, "not ready:\n%v\n", err)
		return
	}
	fmt.Fprintf(w, "ready: nats up, jetstream up, store writable, intake answering, config loaded, %d links configured\n", len(s.n.Config().Peers))
}

// Peer is a peer as the API reports it.
type Peer struct {
	node.PeerState
	// Since is when the link last changed state (or when the server
	// started watching it).
	Since time.Time `json:"since"`
	// Stale counts the peer's conditions gone stale.
	Stale    int            `json:"stale"`
	Counters metrics.Counts `json:"counters"`
	// Rates are signals per second over the last tick.
	RateIn  float64 `json:"rate_in"`
	RateOut float64 `json:"rate_out"`
}

func (s *Server) peers(ctx context.Context) []Peer {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	stale := map[string]int{}
	for _, c := range s.n.Conditions(conditions.Filter{IncludeStale: true}) {
		if c.Status == conditions.StatusStale {
			stale[c.Peer]++
		}
	}
	ps := s.n.Peers(ctx)
	out := make([]Peer, 0, len(ps))
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range ps {
		ap := Peer{PeerState: p, Stale: stale[p.ID], Counters: s.metrics.Counts(p.ID)}
		if ls := s.links[p.ID]; ls != nil {
			ap.Since, ap.RateIn, ap.RateOut = ls.since, ls.rateIn, ls.rateOut
		}
		out = append(out, ap)
	}
	return out
}

// tick follows link state and rates, and feeds the event streams.
func (s *Server) tick(ctx context.Context) {
	t := time.NewTicker(s.opts.Tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			s.mu.Lock()
			s.followPeers(now)
			for id, ls := range s.links {
				if up := s.n.LinkUp(id); up != ls.up {
					ls.up, ls.since = up, now
				}
				c := s.metrics.Counts(id)
				if dt := now.Sub(ls.at).Seconds(); dt > 0 {
					ls.rateIn = float64(c.In-ls.last.In) / dt
					ls.rateOut = float64(c.Out-ls.last.Out) / dt
				}
				ls.last, ls.at = c, now
			}
			s.mu.Unlock()
			if s.hub.listeners() > 0 {
				s.hub.state(s.state(ctx, false))
			}
		}
	}
}

// followPeers tracks the peers a reload added and forgets those it
// removed; s.mu is held.
func (s *Server) followPeers(now time.Time) {
	ids := map[string]bool{}
	for _, p := range s.n.Config().Peers {
		ids[p.ID] = true
		if s.links[p.ID] == nil {
			s.links[p.ID] = &linkState{up: s.n.LinkUp(p.ID), since: now, at: now, last: s.metrics.Counts(p.ID)}
		}
	}
	for id := range s.links {
		if !ids[id] {
			delete(s.links, id)
		}
	}
}

// State is what an event stream's "state" event carries.
type State struct {
	Operator struct {
		ID   string `json:"id"`
		Name string `json:"name,omitempty"`
	} `json:"operator"`
	Ready      bool                   `json:"ready"`
	Peers      []Peer                 `json:"peers"`
	Conditions []conditions.Condition `json:"conditions"`
	// ConditionsTotal counts all held conditions; Conditions holds at
	// most maxStateConditions of them.
	ConditionsTotal int      `json:"conditions_total"`
	Rejects         []Reject `json:"rejects,omitempty"`
}

const maxStateConditions = 200

func (s *Server) state(ctx context.Context, withRejects bool) []byte {
	var st State
	st.Operator.ID, st.Operator.Name = s.n.ID(), s.n.Config().Operator.Name
	st.Ready = s.n.Readiness() == nil
	st.Peers = s.peers(ctx)
	cs := s.n.Conditions(conditions.Filter{IncludeStale: true})
	st.ConditionsTotal = len(cs)
	if len(cs) > maxStateConditions {
		cs = cs[:maxStateConditions]
	}
	st.Conditions = cs
	if withRejects {
		st.Rejects = s.rejects.recent(20)
	}
	b, _ := json.Marshal(st) // plain data always marshals
	return b
}

func (s *Server) conditions(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	for k := range q {
		switch k {
		case "peer", "origin", "class", "service", "stale":
		default:
			problem(w, http.StatusBadRequest, "unknown query parameter %q: filter with peer, origin, class, service, and stale=true to include stale conditions", k)
			return
		}
	}
	f := conditions.Filter{Peer: q.Get("peer"), Origin: q.Get("origin"), Class: q.Get("class"), Service: q.Get("service")}
	if v := q.Get("stale"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			problem(w, http.StatusBadRequest, "stale=%q: want true or false", v)
			return
		}
		f.IncludeStale = b
	}
	cs := s.n.Conditions(f)
	if cs == nil {
		cs = []conditions.Condition{}
	}
	writeJSON(w, http.StatusOK, cs)
}

func (s *Server) recentRejects(w http.ResponseWriter, r *http.Request) {
	limit := 100
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			problem(w, http.StatusBadRequest, "limit=%q: want a positive number (at most %d are kept)", v, s.rejects.size())
			return
		}
		limit = n
	}
	writeJSON(w, http.StatusOK, s.rejects.recent(limit))
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// problem answers an error as JSON: {"error": "..."}.
func problem(w http.ResponseWriter, code int, format string, args ...any) {
	writeJSON(w, code, map[string]string{"error": fmt.Sprintf(format, args...)})
}
