// Package metrics counts what crosses each border of a node, for
// Prometheus. Two halves: an observe.Observer that the pipelines report to
// (signals in, rejects by reason, import latency) and that never blocks,
// and a collector that reads the node's state when /metrics is scraped
// (link state, backlog, conditions, drops, NATS slow consumers). Signals
// out and export latency come from a watch of what the node's senders put
// on each link (node.WatchExports).
//
// Every per-peer family carries the label peer; local producers appear as
// peer="local" where they apply (rejects, conditions).
package metrics

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/anfed/anfed/internal/conditions"
	"github.com/anfed/anfed/internal/expiry"
	"github.com/anfed/anfed/internal/node"
	"github.com/anfed/anfed/internal/observe"
	"github.com/anfed/anfed/internal/reject"
	"github.com/anfed/anfed/internal/session"
)

// Namespace prefixes every metric name.
const Namespace = "anfed"

// LatencyBuckets are the export and import latency histograms' buckets,
// in seconds: 0.5 ms to about a minute.
var LatencyBuckets = prometheus.ExponentialBuckets(0.0005, 2.5, 14)

// Counts are a peer's counters, for the JSON API and the dashboard.
type Counts struct {
	In       uint64            `json:"in"`
	Out      uint64            `json:"out"`
	Rejected map[string]uint64 `json:"rejected"` // by reason
}

// Metrics is one node's metrics.
type Metrics struct {
	reg *prometheus.Registry

	in, out, accepted *prometheus.CounterVec
	rejected          *prometheus.CounterVec
	importLat         *prometheus.HistogramVec
	exportLat         *prometheus.HistogramVec

	mu     sync.Mutex
	counts map[string]*Counts
	// storedAt remembers when the node stored each recent signal (by
	// source+id), so a send on a link yields the export latency: from our
	// store to the wire. Bounded: the oldest are forgotten first.
	storedAt map[string]time.Time
	ring     []string
	next     int
}

// storedAtCap bounds storedAt.
const storedAtCap = 1 << 16

// New returns metrics with nothing attached: give Observer to the node
// (node.WithObserver) before it starts, then Attach it.
func New() *Metrics {
	m := &Metrics{
		reg:      prometheus.NewRegistry(),
		counts:   map[string]*Counts{},
		storedAt: make(map[string]time.Time, 1024),
		ring:     make([]string, storedAtCap),
	}
	m.in = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Subsystem: "peer", Name: "signals_in_total",
		Help: "Signals accepted from the peer and stored (duplicates excluded)."}, []string{"peer"})
	m.out = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Subsystem: "peer", Name: "signals_out_total",
		Help: "Signals put on the link to the peer; a resend counts again."}, []string{"peer"})
	m.rejected = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Subsystem: "peer", Name: "rejected_total",
		Help: `Signals refused, by the peer that sent them ("local" for local producers) and reason.`}, []string{"peer", "reason"})
	m.accepted = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "local_signals_total",
		Help: "Signals from local producers stored (result=accepted) or already stored (result=duplicate)."}, []string{"result"})
	m.importLat = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: Namespace, Subsystem: "peer", Name: "import_latency_seconds",
		Help: "From the peer putting a signal on the link to our store holding it.", Buckets: LatencyBuckets}, []string{"peer"})
	m.exportLat = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: Namespace, Subsystem: "peer", Name: "export_latency_seconds",
		Help: "From our store holding a signal to our sender putting it on the link to the peer (resends included).", Buckets: LatencyBuckets}, []string{"peer"})
	m.reg.MustRegister(m.in, m.out, m.rejected, m.accepted, m.importLat, m.exportLat,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Registry is where the metrics are registered; serve it with promhttp.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Observer is what the node's pipelines report to.
func (m *Metrics) Observer() observe.Observer { return (*observer)(m) }

// Attach starts counting n's exports and registers the collector of its
// state; n must be started. stop ends the export watch (call it before
// n.Stop).
func (m *Metrics) Attach(n *node.Node) (stop func(), err error) {
	for _, p := range n.Config().Peers {
		// Every family shows each configured peer from the start.
		m.in.WithLabelValues(p.ID)
		m.out.WithLabelValues(p.ID)
		m.importLat.WithLabelValues(p.ID)
		m.exportLat.WithLabelValues(p.ID)
		m.peer(p.ID)
	}
	stop, err = n.WatchExports(m.exported)
	if err != nil {
		return nil, err
	}
	if err := m.reg.Register(&collector{n: n}); err != nil {
		stop()
		return nil, err
	}
	return stop, nil
}

// Counts returns a copy of peer's counters.
func (m *Metrics) Counts(peer string) Counts {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.counts[peer]
	if c == nil {
		return Counts{Rejected: map[string]uint64{}}
	}
	out := *c
	out.Rejected = make(map[string]uint64, len(c.Rejected))
	for k, v := range c.Rejected {
		out.Rejected[k] = v
	}
	return out
}

// peer returns id's counters, made at first use.
func (m *Metrics) peer(id string) *Counts {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.peerLocked(id)
}

// peerLocked is peer with m.mu held.
func (m *Metrics) peerLocked(id string) *Counts {
	c := m.counts[id]
	if c == nil {
		c = &Counts{Rejected: map[string]uint64{}}
		m.counts[id] = c
	}
	return c
}

func (m *Metrics) stored(key string, at time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if old := m.ring[m.next]; old != "" {
		delete(m.storedAt, old)
	}
	m.ring[m.next] = key
	m.next = (m.next + 1) % len(m.ring)
	m.storedAt[key] = at
}

// exported counts a signal put on the link to a peer.
func (m *Metrics) exported(e node.Export) {
	m.out.WithLabelValues(e.Peer).Inc()
	var id struct {
		Source string `json:"source"`
		ID     string `json:"id"`
	}
	_ = json.Unmarshal(e.Msg.Data, &id)
	m.mu.Lock()
	m.peerLocked(e.Peer).Out++
	at, ok := m.storedAt[id.Source+" "+id.ID]
	m.mu.Unlock()
	if ok {
		m.exportLat.WithLabelValues(e.Peer).Observe(e.At.Sub(at).Seconds())
	}
}

// observer is Metrics seen as an observe.Observer.
type observer Metrics

func (o *observer) Accepted(a observe.Acceptance) {
	m := (*Metrics)(o)
	if a.Duplicate {
		m.accepted.WithLabelValues("duplicate").Inc()
		return
	}
	m.accepted.WithLabelValues("accepted").Inc()
	if a.Event != nil {
		m.stored(a.Event.Key(), time.Now())
	}
}

func (o *observer) Crossed(c observe.Crossing) {
	m := (*Metrics)(o)
	if c.Duplicate {
		return // counted as a reject (duplicate) too
	}
	m.in.WithLabelValues(c.From).Inc()
	if c.Latency > 0 {
		m.importLat.WithLabelValues(c.From).Observe(c.Latency.Seconds())
	}
	m.mu.Lock()
	m.peerLocked(c.From).In++
	m.mu.Unlock()
	if c.Event != nil {
		m.stored(c.Event.Key(), time.Now()) // a transit signal is exported on
	}
}

func (o *observer) Rejected(r observe.Rejection) {
	m := (*Metrics)(o)
	from := r.From
	switch {
	case r.To != "":
		from = r.To // a drop on the way to the peer counts against it
	case from == "":
		from = observe.Local
	}
	m.rejected.WithLabelValues(from, string(r.Reason)).Add(float64(r.Signals()))
	m.mu.Lock()
	m.peerLocked(from).Rejected[string(r.Reason)] += r.Signals()
	m.mu.Unlock()
}

// PlannedDown is the session state the metrics and the peers view show
// for a peer away on a planned restart it announced, until it is due back.
const PlannedDown = "planned-down"

// collector reads the node's state at scrape time.
type collector struct{ n *node.Node }

var (
	descLinkUp = prometheus.NewDesc(Namespace+"_peer_link_up",
		"1 while the leaf link with the peer is connected.", []string{"peer"}, nil)
	descHeld = prometheus.NewDesc(Namespace+"_peer_link_held",
		"1 while this process does the link's work (with nats.external: holds the link's lease); instance is this process's name, holder the lease holder's.", []string{"peer", "instance", "holder"}, nil)
	descBacklog = prometheus.NewDesc(Namespace+"_peer_backlog",
		"Stored signals still to be decided for the peer: not yet sent, or sent and not yet answered.", []string{"peer"}, nil)
	descActive = prometheus.NewDesc(Namespace+"_peer_conditions_active",
		`Active conditions learnt from the peer ("local": from local producers).`, []string{"peer"}, nil)
	descStale = prometheus.NewDesc(Namespace+"_peer_conditions_stale",
		"Conditions of the peer gone stale: its link has been down longer than its grace time.", []string{"peer"}, nil)
	descDropped = prometheus.NewDesc(Namespace+"_peer_dropped_total",
		"Signals that never reached the peer, by reason: store-bound (storage.max_age/max_bytes), buffer-age and buffer-bytes (export.buffer), link-down and slow (lossy and stream delivery: the link was down, or NATS dropped them before the sender took them).", []string{"peer", "reason"}, nil)
	descStreamSent = prometheus.NewDesc(Namespace+"_peer_stream_sent_total",
		"Messages a lossy or stream export published on the link to the peer, by kind: signal (stored) or telemetry (stream delivery, never stored).", []string{"peer", "kind"}, nil)
	descStreamReceived = prometheus.NewDesc(Namespace+"_peer_stream_received_total",
		"Numbered messages received from a peer that streams to us (export.delivery: stream at its end), telemetry and stored signals alike, before the checks.", []string{"peer"}, nil)
	descStreamLost = prometheus.NewDesc(Namespace+"_peer_stream_lost_total",
		"Messages of a peer's stream that never arrived (gaps in the link's numbers: link down, slow, dropped on the way); never resent.", []string{"peer"}, nil)
	descStreamAnomalies = prometheus.NewDesc(Namespace+"_peer_stream_anomalies_total",
		"Numbered messages of a peer's stream whose number or epoch was not believed (a jump past the loss credit, a number going back, not a number, an epoch too long): a broken or hostile sender; not counted lost.", []string{"peer"}, nil)
	descStreamTelemetry = prometheus.NewDesc(Namespace+"_peer_stream_telemetry_delivered_total",
		"The peer's telemetry that passed every check and was published to local subscribers (an.telsig); refusals count in anfed_peer_rejected_total by reason.", []string{"peer"}, nil)
	descTelemetryAccepted = prometheus.NewDesc(Namespace+"_telemetry_accepted_total",
		"Telemetry from local producers (an.tel) checked, signed and handed to the stream exports and local subscribers; never stored.", nil, nil)
	descSuppressed = prometheus.NewDesc(Namespace+"_peer_conditions_suppressed",
		"Conditions of the peer that flap dampening suppressed now (import.dampening): their signals are held.", []string{"peer"}, nil)
	descDampened = prometheus.NewDesc(Namespace+"_peer_signals_dampened_total",
		"Signals of the peer held by flap dampening (answered accepted; only the latest of each suppressed condition is delivered, at release).", []string{"peer"}, nil)
	descRibIn = prometheus.NewDesc(Namespace+"_peer_adj_rib_in",
		"Conditions of the peer whose latest signal, refused by import policy, is kept for a wider policy (its Adj-RIB-In; at most import.adj_rib_in.limit).", []string{"peer"}, nil)
	descRibInOver = prometheus.NewDesc(Namespace+"_peer_adj_rib_in_over_bound_total",
		"Signals of the peer refused by import policy and not kept in its Adj-RIB-In (reason adj-rib-in-full: past import.adj_rib_in.limit or the stream's share of storage.max_bytes).", []string{"peer"}, nil)
	descAdvisories = prometheus.NewDesc(Namespace+"_peer_advisories_total",
		"Advisories the peer sent us over the link (e.g. that it reached its maximum of active conditions from us).", []string{"peer"}, nil)
	descLimits = prometheus.NewDesc(Namespace+"_peer_limit_refusals_total",
		"What the embedded NATS server refused the peer's leaf connections from its limits (peers[].limits), as logged: max-connections, max-subscriptions (logged at most every 2 s), max-payload. Peer \"\": not attributable.", []string{"peer", "reason"}, nil)
	descSession = prometheus.NewDesc(Namespace+"_peer_session_state",
		"1 for the state the link's session is in (idle, open-sent, established, planned-down: the peer announced a planned restart and is not due back yet), 0 for the others.", []string{"peer", "state"}, nil)
	descDowns = prometheus.NewDesc(Namespace+"_peer_session_downs_total",
		"Times the link's established session went down, by cause: planned (a graceful-shutdown notice, ours or the peer's), administrative (disabled or removed), failed (link cut, hold timer, mismatch, an unannounced restart).", []string{"peer", "cause"}, nil)
	descFlaps = prometheus.NewDesc(Namespace+"_peer_session_flaps_total",
		"Times the link's established session went down (link cut, hold timer, NOTIFICATION, peer restart).", []string{"peer"}, nil)
	descRefreshes = prometheus.NewDesc(Namespace+"_peer_refreshes_total",
		"Refreshes of the session, by direction: sent (we re-stated our conditions, then End-of-RIB) and received (the peer's End-of-RIB).", []string{"peer", "direction"}, nil)
	descSwept = prometheus.NewDesc(Namespace+"_peer_refresh_withdrawn",
		"Conditions of the peer its last End-of-RIB withdrew (held here, no longer stated by the peer).", []string{"peer"}, nil)
	descSlow = prometheus.NewDesc(Namespace+"_nats_slow_consumers_total",
		"Slow consumers the embedded NATS server counted (clients that could not keep up and lost messages).", nil, nil)
	descReloads = prometheus.NewDesc(Namespace+"_reloads_total",
		"Policy reloads (SIGHUP, anfed reload, POST /v1/reload): ok, or failed (a bad file or a change a reload cannot make: nothing was changed).", []string{"result"}, nil)
	descReady = prometheus.NewDesc(Namespace+"_ready",
		"1 when the node is ready (see /readyz).", nil, nil)
	descInfo = prometheus.NewDesc(Namespace+"_info",
		"The node's operator id.", []string{"operator"}, nil)
	descCertExpiry = prometheus.NewDesc(Namespace+"_certificate_expiry_seconds",
		"Seconds until a leaf TLS certificate the policy names expires (negative: expired): cert listener or listener-ca (ours, peer \"\"), client or peer-ca (for the peer we dial).", []string{"cert", "peer"}, nil)
	descAudit = prometheus.NewDesc(Namespace+"_audit_records_total",
		"Audit trail records of this process (docs/coordination.md#audit-trail): written (stored), retried (writes tried again), failed (not stored after the retries: the chain shows the gap), dropped (never written: the queue stayed full).", []string{"result"}, nil)
	descAuditQueued = prometheus.NewDesc(Namespace+"_audit_queued",
		"Audit trail records waiting to be written.", nil, nil)
	descPeeringExpiry = prometheus.NewDesc(Namespace+"_peer_expiry_seconds",
		"Seconds until the peering ends (peers[].expires; negative: ended). Absent for a peering without an end.", []string{"peer"}, nil)
)

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descLinkUp, descHeld, descBacklog, descActive, descStale, descDropped, descSuppressed, descDampened, descRibIn, descRibInOver, descAdvisories, descLimits, descSession, descDowns, descFlaps, descRefreshes, descSwept, descSlow, descReloads, descReady, descInfo, descCertExpiry, descPeeringExpiry, descAudit, descAuditQueued, descStreamSent, descStreamReceived, descStreamLost, descStreamAnomalies, descStreamTelemetry, descTelemetryAccepted} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	n := c.n
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	ch <- prometheus.MustNewConstMetric(descInfo, prometheus.GaugeValue, 1, n.ID())
	ready := 0.0
	if n.Readiness() == nil {
		ready = 1
	}
	ch <- prometheus.MustNewConstMetric(descReady, prometheus.GaugeValue, ready)
	ok, failed, _ := n.Reloads()
	ch <- prometheus.MustNewConstMetric(descReloads, prometheus.CounterValue, float64(ok), "ok")
	ch <- prometheus.MustNewConstMetric(descReloads, prometheus.CounterValue, float64(failed), "failed")
	ch <- prometheus.MustNewConstMetric(descTelemetryAccepted, prometheus.CounterValue, float64(n.TelemetryAccepted()))
	if srv := n.Server(); srv != nil {
		if vz, err := srv.Varz(nil); err == nil {
			ch <- prometheus.MustNewConstMetric(descSlow, prometheus.CounterValue, float64(vz.SlowConsumers))
		}
	}
	for _, e := range n.Expiry() {
		switch e.Kind {
		case expiry.KindCertificate:
			ch <- prometheus.MustNewConstMetric(descCertExpiry, prometheus.GaugeValue, float64(e.SecondsLeft), e.Name, e.Peer)
		case expiry.KindPeering:
			ch <- prometheus.MustNewConstMetric(descPeeringExpiry, prometheus.GaugeValue, float64(e.SecondsLeft), e.Peer)
		}
	}
	if st, ok := n.AuditStats(); ok {
		for result, v := range map[string]uint64{"written": st.Written, "retried": st.Retried, "failed": st.Failed, "dropped": st.Dropped} {
			ch <- prometheus.MustNewConstMetric(descAudit, prometheus.CounterValue, float64(v), result)
		}
		ch <- prometheus.MustNewConstMetric(descAuditQueued, prometheus.GaugeValue, float64(st.Queued))
	}
	for peer, byReason := range n.LimitRefusals() {
		for reason, v := range byReason {
			ch <- prometheus.MustNewConstMetric(descLimits, prometheus.CounterValue, float64(v), peer, reason)
		}
	}
	if n.Table() == nil {
		return
	}
	active, stale := map[string]int{}, map[string]int{}
	for _, p := range n.Config().Peers {
		active[p.ID], stale[p.ID] = 0, 0
	}
	for _, cd := range n.Conditions(conditions.Filter{IncludeStale: true}) {
		switch cd.Status {
		case conditions.StatusStale:
			stale[cd.Peer]++
		case conditions.StatusActive:
			active[cd.Peer]++
		}
	}
	for peer, v := range active {
		ch <- prometheus.MustNewConstMetric(descActive, prometheus.GaugeValue, float64(v), peer)
	}
	for peer, v := range stale {
		ch <- prometheus.MustNewConstMetric(descStale, prometheus.GaugeValue, float64(v), peer)
	}
	for _, ps := range n.Peers(ctx) {
		up := 0.0
		if ps.Up {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(descLinkUp, prometheus.GaugeValue, up, ps.ID)
		held := 0.0
		if ps.HeldHere {
			held = 1
		}
		ch <- prometheus.MustNewConstMetric(descHeld, prometheus.GaugeValue, held, ps.ID, ps.Answered, ps.Holder)
		ch <- prometheus.MustNewConstMetric(descBacklog, prometheus.GaugeValue, float64(ps.Backlog), ps.ID)
		ch <- prometheus.MustNewConstMetric(descSuppressed, prometheus.GaugeValue, float64(ps.Suppressed), ps.ID)
		ch <- prometheus.MustNewConstMetric(descDampened, prometheus.CounterValue, float64(ps.Dampened), ps.ID)
		ch <- prometheus.MustNewConstMetric(descAdvisories, prometheus.CounterValue, float64(ps.Advisories), ps.ID)
		ch <- prometheus.MustNewConstMetric(descRibIn, prometheus.GaugeValue, float64(ps.AdjRibIn.Held), ps.ID)
		ch <- prometheus.MustNewConstMetric(descRibInOver, prometheus.CounterValue, float64(ps.AdjRibIn.OverBound), ps.ID)
		if s := ps.Session; s != nil {
			state := string(s.State)
			if s.PlannedDown(time.Now()) {
				state = PlannedDown
			}
			for _, st := range []string{string(session.Idle), string(session.OpenSent), string(session.Established), PlannedDown} {
				v := 0.0
				if state == st {
					v = 1
				}
				ch <- prometheus.MustNewConstMetric(descSession, prometheus.GaugeValue, v, ps.ID, st)
			}
			for _, cause := range []string{node.CausePlanned, node.CauseAdministrative, node.CauseFailed} {
				ch <- prometheus.MustNewConstMetric(descDowns, prometheus.CounterValue, float64(s.Downs[cause]), ps.ID, cause)
			}
			ch <- prometheus.MustNewConstMetric(descFlaps, prometheus.CounterValue, float64(s.Flaps), ps.ID)
			ch <- prometheus.MustNewConstMetric(descRefreshes, prometheus.CounterValue, float64(s.RefreshesSent), ps.ID, "sent")
			ch <- prometheus.MustNewConstMetric(descRefreshes, prometheus.CounterValue, float64(s.EndOfRIBs), ps.ID, "received")
			ch <- prometheus.MustNewConstMetric(descSwept, prometheus.GaugeValue, float64(s.Swept), ps.ID)
		}
		for reason, v := range map[reject.Reason]uint64{reject.StoreBound: ps.Discarded, reject.BufferAge: ps.DroppedTooOld, reject.BufferBytes: ps.DroppedOverBytes, "link-down": ps.DroppedLinkDown, "slow": ps.DroppedSlow} {
			ch <- prometheus.MustNewConstMetric(descDropped, prometheus.CounterValue, float64(v), ps.ID, string(reason))
		}
		if sv := ps.Stream; sv != nil {
			ch <- prometheus.MustNewConstMetric(descStreamSent, prometheus.CounterValue, float64(sv.Out.Sent-sv.Out.Telemetry), ps.ID, "signal")
			ch <- prometheus.MustNewConstMetric(descStreamSent, prometheus.CounterValue, float64(sv.Out.Telemetry), ps.ID, "telemetry")
			ch <- prometheus.MustNewConstMetric(descStreamReceived, prometheus.CounterValue, float64(sv.In.Received), ps.ID)
			ch <- prometheus.MustNewConstMetric(descStreamLost, prometheus.CounterValue, float64(sv.In.Lost), ps.ID)
			ch <- prometheus.MustNewConstMetric(descStreamAnomalies, prometheus.CounterValue, float64(sv.In.Anomalies), ps.ID)
			ch <- prometheus.MustNewConstMetric(descStreamTelemetry, prometheus.CounterValue, float64(sv.In.Telemetry), ps.ID)
		}
	}
}
