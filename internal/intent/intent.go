// Package intent is anfed's TMF921 Intent Management API subset (v5
// resource model) and the intents' life across operators.
//
// An operator makes an intent for a service it shares with a partner
// (POST /tmf-api/intentManagement/v5/intent): the expectations it asks of
// the partner (latency, jitter, loss, availability, throughput, time
// windows). The node stores it in the JetStream KV bucket ANFED_INTENTS
// of its operations account and proposes it to the partner as a signed
// `intent` signal; the partner's node accepts or rejects it by its own
// policy (intents.accept) and answers with an `intent` signal of its own,
// which sets the intent's lifecycleStatus at the owner and adds an
// IntentReport. The partner then evaluates its own performance
// deviations against what it accepted: sla-breach signals naming the
// intent, and intent-report signals to the owner when the intent's
// compliance changes. An intent is in force within its validFor only, and
// ends by itself at both operators at its endDateTime. See
// docs/intents.md for the field mapping.
package intent

import (
	"context"
	"fmt"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/anfed/anfed/internal/bridge"
	"github.com/anfed/anfed/internal/config"
)

// Deps are what the intents work with.
type Deps struct {
	// Node is the started node; the intents need what the bridges need.
	Node    bridge.Node
	Config  *config.Intents
	HTTP    config.HTTP // its token_file is the default credential
	Metrics prometheus.Registerer
	Log     zerolog.Logger
	// BaseURL is the node's HTTP server's base URL ("http://127.0.0.1:8440"),
	// read to make each intent's href.
	BaseURL func() string
	// Peers are the ids of the node's peers: an intent's partner is one.
	Peers []string
	// View, when set, is kept with the intents we accepted and are in
	// force: the node's senders read it (node.WithIntents,
	// export.intent_classes).
	View *View
	// Refresh, when set, re-states our state to a peer through the
	// export policy (node.RefreshPeer): called when an intent of that
	// peer comes into force or ends, so what export.intent_classes now
	// passes or no longer passes reaches it.
	Refresh func(ctx context.Context, peer string) error
}

// Service is one node's intents: the API and the federation.
type Service struct {
	d       Deps
	self    string
	log     zerolog.Logger
	token   string
	nc      *nats.Conn
	store   *kvStore
	metrics *prometheus.CounterVec
	// hub is the TMF921 hub; delivered counts its deliveries.
	hub       *bridge.Hub
	delivered *prometheus.CounterVec

	// wake tells the validity timer an intent was made, changed or decided.
	wake chan struct{}

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New opens the intents of a started node, or returns nil when the
// policy has no intents section. Mount its routes, then Start it once
// the HTTP server listens.
func New(ctx context.Context, d Deps) (*Service, error) {
	if d.Config == nil {
		return nil, nil
	}
	tf := d.Config.TokenFile
	if tf == "" {
		tf = d.HTTP.TokenFile
	}
	tok, err := config.ReadToken(tf)
	if err != nil {
		return nil, fmt.Errorf("intents.token_file: %w", err)
	}
	s := &Service{d: d, self: d.Node.ID(), log: d.Log.With().Str("component", "intents").Logger(), token: tok, wake: make(chan struct{}, 1)}
	s.metrics = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "anfed", Subsystem: "intent", Name: "api_rejected_total",
		Help: "Requests the TMF921 intent API refused, by reason (unauthorized, malformed, bad-field, not-found, conflict, unavailable)."}, []string{"reason"})
	s.delivered = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "anfed", Subsystem: "intent", Name: "hub_deliveries_total",
		Help: "Intent reports POSTed to TMF921 hub listeners as IntentReportCreateEvent, by result: ok, failed (retried later), dead-letter (gave up), filtered (not one of our intents, or the registration's query left it out)."}, []string{"result"})
	if d.Metrics != nil {
		for _, c := range []prometheus.Collector{s.metrics, s.delivered} {
			if err := d.Metrics.Register(c); err != nil {
				return nil, fmt.Errorf("intent metrics: %w", err)
			}
		}
	}
	nc, err := d.Node.Connect(nats.Name("anfed-intents"))
	if err != nil {
		return nil, fmt.Errorf("intents: %w", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("intents: %w", err)
	}
	st, err := openStore(ctx, js)
	if err != nil {
		nc.Close()
		return nil, err
	}
	s.nc, s.store = nc, st
	hub, err := s.openHub(ctx, st)
	if err != nil {
		nc.Close()
		return nil, err
	}
	s.hub = hub
	return s, nil
}

// Start runs what the intents do in the background until Stop.
func (s *Service) Start() {
	if s == nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	// The hub's stored registrations first, as the TMF642 hub does: once
	// Start returns, GET /hub shows them and their deliveries run.
	s.hub.Start(ctx)
	deviations := func(ctx context.Context) { s.runSLA(ctx, classDeviation, "intents-sla") }
	congestions := func(ctx context.Context) { s.runSLA(ctx, classCongestion, "intents-risk") }
	faults := func(ctx context.Context) { s.runSLA(ctx, classFault, "intents-faults") }
	for _, work := range []func(context.Context){s.run, deviations, congestions, faults, s.runReports, s.runPeriodic, s.reproposeAll, s.fillView, s.runValidity} {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			work(ctx)
		}()
	}
}

// fillView puts in the view, at start, the intents we accepted.
func (s *Service) fillView(ctx context.Context) {
	if s.d.View == nil {
		return
	}
	recs, err := s.store.all(ctx)
	if err != nil {
		s.log.Warn().Err(err).Msg("intents: reading the intents we accepted")
		return
	}
	owners := map[string]bool{}
	for _, rec := range recs {
		if s.d.View.set(rec.Intent) {
			owners[rec.Intent.Owner] = true
		}
	}
	for o := range owners {
		s.refresh(ctx, o)
	}
}

// inView updates the view with a handled intent and, when that changed
// what the owner may receive, re-states our state to it.
func (s *Service) inView(ctx context.Context, in Intent) {
	if s.d.View.set(in) {
		s.refresh(ctx, in.Owner)
	}
}

func (s *Service) refresh(ctx context.Context, peer string) {
	if s.d.Refresh == nil {
		return
	}
	if err := s.d.Refresh(ctx, peer); err != nil && ctx.Err() == nil {
		s.log.Warn().Err(err).Str("peer", peer).Msg("intents: re-stating our state to an intent's owner; the next refresh does it")
	}
}

// reproposeAll proposes again, at start, each of our intents the partner
// has not answered and each terminated one: a proposal stored before a
// crash is a duplicate, one that was not is sent now.
func (s *Service) reproposeAll(ctx context.Context) {
	recs, err := s.store.all(ctx)
	if err != nil {
		s.log.Warn().Err(err).Msg("intents: reading the intents to propose again")
		return
	}
	for _, rec := range recs {
		if rec.Intent.Owner != s.self || (rec.Intent.LifecycleStatus != Acknowledged && rec.Intent.LifecycleStatus != Terminated) {
			continue
		}
		if err := s.propose(ctx, rec); err != nil && ctx.Err() == nil {
			s.log.Warn().Err(err).Str("intent", rec.Intent.ID).Msg("intents: proposing again at start")
		}
	}
}

// Stop stops the intents' background work and closes their connection.
func (s *Service) Stop() {
	if s == nil {
		return
	}
	if s.cancel != nil {
		s.cancel()
	}
	s.wg.Wait()
	s.hub.Stop()
	s.nc.Close()
}
