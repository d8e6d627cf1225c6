// Command assurance-publisher turns synthetic KPI series — latency, packet
// loss and throughput per service, seeded — into anfed signals:
// `performance-deviation` when a KPI crosses its threshold (raised, updated
// as it moves, cleared with hysteresis once it is back), and `sla-risk` when
// its trend is predicted to cross the SLA bound within the horizon.
//
// Like examples/closed-loop-go it uses nothing of anfed's code: nats.go and
// the CloudEvents Go SDK only.
//
//	go run ./examples/assurance-publisher --server nats://127.0.0.1:4222 \
//	    --user assurance --password change-me-assurance-a --operator op-a --services vpn-acme
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"
)

const intake = "an.pub" // publish a signal as a request; the answer says accepted or why not

type options struct {
	URL      string
	User     string
	Password string
	Operator string
	Services []string
	Seed     uint64
	Steps    int           // samples per KPI; 0 runs until stopped
	Step     time.Duration // the sample period (the KPI window)
	Interval time.Duration // real time between two samples (0: as fast as the node answers)
	Start    time.Time     // time of the first sample (zero: now)

	Confirm int // samples beyond a bound before a deviation is raised or cleared
	Window  int // samples in the trend fit
	Horizon int // samples ahead the trend is extrapolated
}

func main() {
	var o options
	var services string
	flag.StringVar(&o.URL, "server", "nats://127.0.0.1:4222", "the node's client URL (nats.client.listen in its policy file)")
	flag.StringVar(&o.User, "user", "assurance", "a local user of the node (nats.users)")
	flag.StringVar(&o.Password, "password", os.Getenv("ANFED_PASSWORD"), "its password (default: $ANFED_PASSWORD)")
	flag.StringVar(&o.Operator, "operator", "op-a", "this operator's id (operator.id of the node)")
	flag.StringVar(&services, "services", "vpn-acme", "comma-separated services to synthesise KPIs for")
	flag.Uint64Var(&o.Seed, "seed", 1, "random seed: the same seed gives the same series")
	flag.IntVar(&o.Steps, "steps", 0, "samples per KPI (0: until stopped)")
	flag.DurationVar(&o.Step, "step", time.Minute, "sample period: the KPI measurement window")
	flag.DurationVar(&o.Interval, "interval", time.Second, "real time between two samples")
	flag.IntVar(&o.Confirm, "confirm", 2, "samples beyond a bound before a deviation is raised or cleared")
	flag.IntVar(&o.Window, "window", 12, "samples in the trend fit of sla-risk")
	flag.IntVar(&o.Horizon, "horizon", 30, "samples ahead the trend is extrapolated")
	flag.Parse()
	o.Services = strings.Split(services, ",")
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	st, err := run(ctx, o, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "assurance-publisher:", err)
		os.Exit(1)
	}
	if st.Rejected > 0 {
		os.Exit(1)
	}
}

// stats counts what the node answered, and the transitions published by
// class and state ("performance-deviation raised").
type stats struct {
	Published, Accepted, Duplicate, Rejected int
	ByKind                                   map[string]int
	Reasons                                  []string
}

func (s stats) String() string {
	kinds := make([]string, 0, len(s.ByKind))
	for k, n := range s.ByKind {
		kinds = append(kinds, fmt.Sprintf("%s=%d", strings.ReplaceAll(k, " ", ":"), n))
	}
	sort.Strings(kinds)
	return fmt.Sprintf("summary: published=%d accepted=%d duplicate=%d rejected=%d %s",
		s.Published, s.Accepted, s.Duplicate, s.Rejected, strings.Join(kinds, " "))
}

// publisher sends signals of one operator's assurance to its node.
type publisher struct {
	o      options
	nc     *nats.Conn
	out    io.Writer
	source string
	seq    int
	runID  int64
	st     stats
}

// run publishes until o.Steps samples were taken or ctx is done, then
// prints and returns the summary.
func run(ctx context.Context, o options, out io.Writer) (stats, error) {
	if o.Confirm < 1 || o.Window < 3 || o.Horizon < 1 || o.Step <= 0 || len(o.Services) == 0 {
		return stats{}, fmt.Errorf("want --confirm >= 1, --window >= 3, --horizon >= 1, --step > 0 and at least one service")
	}
	nc, err := nats.Connect(o.URL, nats.UserInfo(o.User, o.Password), nats.Name("assurance-publisher"))
	if err != nil {
		return stats{}, fmt.Errorf("connect %s: %w", o.URL, err)
	}
	defer nc.Close()
	if o.Start.IsZero() {
		o.Start = time.Now().UTC().Truncate(time.Second)
	}
	p := &publisher{o: o, nc: nc, out: out, source: "anfed://" + o.Operator + "/assurance-publisher",
		runID: o.Start.Unix(), st: stats{ByKind: map[string]int{}}}

	type track struct {
		service string
		k       kpi
		s       *series
		d       *deviationDetector
		r       *riskPredictor
	}
	var tracks []*track
	for _, svc := range o.Services {
		for _, k := range kpis {
			tracks = append(tracks, &track{service: svc, k: k, s: newSeries(o.Seed, svc, k),
				d: &deviationDetector{k: k, confirm: o.Confirm, updateStep: 25},
				r: &riskPredictor{k: k, window: o.Window, horizon: o.Horizon}})
		}
	}
	fmt.Fprintf(out, "# %s: %d services x %d KPIs, seed %d, a sample every %v\n", o.Operator, len(o.Services), len(kpis), o.Seed, o.Step)
	for i := 0; o.Steps == 0 || i < o.Steps; i++ {
		at := o.Start.Add(time.Duration(i) * o.Step)
		for _, tr := range tracks {
			v := tr.s.next()
			if t := tr.d.observe(v); t != none {
				if err := p.send(ctx, p.deviation(tr.service, tr.k, t, v, at)); err != nil {
					return p.st, err
				}
			}
			if t, pr := tr.r.observe(v); t != none {
				if err := p.send(ctx, p.risk(tr.service, tr.k, t, pr, at)); err != nil {
					return p.st, err
				}
			}
		}
		if o.Interval > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(o.Interval):
			}
		}
		if ctx.Err() != nil {
			break
		}
	}
	fmt.Fprintln(out, p.st)
	return p.st, nil
}

// signal is one signal to publish.
type sig struct {
	class, state, subject, severity string
	at                              time.Time
	data                            map[string]any
	note                            string
}

func (p *publisher) deviation(svc string, k kpi, t transition, v float64, at time.Time) sig {
	dir := "above"
	if v < k.Expected {
		dir = "below"
	}
	sev := "WARN"
	if t == cleared {
		sev = "INFO"
	}
	return sig{class: "performance-deviation", state: string(t), subject: svc + "/" + k.Resource, severity: sev, at: at,
		note: fmt.Sprintf("%s %.3g %s (raise beyond %g, clear within %g)", k.Name, v, k.Unit, k.Raise, k.Clear),
		data: map[string]any{
			"kpi":              k.Name,
			"unit":             k.Unit,
			"observedValue":    round3(v),
			"expectedValue":    k.Expected,
			"threshold":        k.Raise,
			"deviationPercent": round3(k.deviation(v)),
			"direction":        dir,
			"window":           map[string]any{"duration": isoDuration(p.o.Step)},
			"measurementPoint": "synthetic-probe-" + svc,
		}}
}

func (p *publisher) risk(svc string, k kpi, t transition, pr prediction, at time.Time) sig {
	cmp := "<="
	if !k.Above {
		cmp = ">="
	}
	sev := "WARN"
	if t == cleared {
		sev = "INFO"
	}
	predicted := round3(math.Max(pr.Value, 0))
	return sig{class: "sla-risk", state: string(t), subject: svc + "/" + k.Resource, severity: sev, at: at,
		note: fmt.Sprintf("%s predicted %.3g %s in %d samples (SLA %s %g, p=%.2f)", k.Name, predicted, k.Unit, p.o.Horizon, cmp, k.SLA, pr.Probability),
		data: map[string]any{
			"slaId":          "sla-" + svc + "-" + k.Resource,
			"metric":         k.Name,
			"objective":      map[string]any{"comparator": cmp, "target": k.SLA, "unit": k.Unit},
			"predictedValue": predicted,
			"probability":    pr.Probability,
			"horizon":        at.Add(time.Duration(p.o.Horizon) * p.o.Step).Format(time.RFC3339),
			"confidence":     round3(pr.Confidence),
			"model":          fmt.Sprintf("linear-trend-w%d", p.o.Window),
		}}
}

// send builds the CloudEvent, publishes it and counts the answer. A
// transport error is retried with the same id (the node answers
// "duplicate" if the first attempt was stored); a refusal is counted and
// printed with the node's reason.
func (p *publisher) send(ctx context.Context, s sig) error {
	p.seq++
	e := event.New()
	e.SetID(fmt.Sprintf("%d-%06d", p.runID, p.seq))
	e.SetSource(p.source)
	e.SetType("net.anfed." + s.class + ".v1")
	e.SetSubject(s.subject)
	e.SetTime(s.at)
	e.SetExtension("anfedorigin", p.o.Operator)
	e.SetExtension("anfedstate", s.state)
	e.SetExtension("severitytext", s.severity)
	e.SetExtension("severitynumber", map[string]int{"INFO": 9, "WARN": 13}[s.severity])
	e.SetExtension("sequence", fmt.Sprintf("%020d", p.seq))
	if s.class == "sla-risk" && s.state != string(cleared) {
		// The prediction is void after its horizon.
		h, _ := time.Parse(time.RFC3339, s.data["horizon"].(string))
		e.SetExtension("expirytime", h)
	}
	if err := e.SetData(event.ApplicationJSON, s.data); err != nil {
		return err
	}
	body, err := json.Marshal(e)
	if err != nil {
		return err
	}
	var m *nats.Msg
	for attempt := 1; ; attempt++ {
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		m, err = p.nc.RequestWithContext(rctx, intake, body)
		cancel()
		if err == nil {
			break
		}
		if attempt == 3 || ctx.Err() != nil {
			return fmt.Errorf("publish %s: %w", e.ID(), err)
		}
		time.Sleep(time.Second)
	}
	var a struct{ Status, Reason, Error string }
	if err := json.Unmarshal(m.Data, &a); err != nil {
		return fmt.Errorf("publish %s: unreadable answer %q", e.ID(), m.Data)
	}
	p.st.Published++
	switch a.Status {
	case "accepted":
		p.st.Accepted++
		p.st.ByKind[s.class+" "+s.state]++
	case "duplicate":
		p.st.Duplicate++
	default:
		p.st.Rejected++
		p.st.Reasons = append(p.st.Reasons, a.Reason+": "+a.Error)
	}
	fmt.Fprintf(p.out, "%s  %-21s %-7s %-26s %-9s %s\n", s.at.Format("15:04:05"), s.class, s.state, s.subject, a.Status, s.note)
	if a.Status != "accepted" && a.Status != "duplicate" {
		fmt.Fprintf(p.out, "          refused: %s: %s\n", a.Reason, a.Error)
	}
	return nil
}

// isoDuration writes d as an ISO 8601 duration, e.g. PT1M or PT30S.
func isoDuration(d time.Duration) string {
	if d%time.Minute == 0 {
		return fmt.Sprintf("PT%dM", int(d/time.Minute))
	}
	return fmt.Sprintf("PT%dS", int(math.Ceil(d.Seconds())))
}
