package demo

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/anfed/anfed/internal/signal"
)

// source is op-a's synthetic assurance: it walks conditions on the shared
// service through raised, updated and cleared, now and then reports on a
// private service that is never exported, and has a buggy probe whose
// out-of-range KPI intake refuses.
type source struct {
	p     *producer
	probe *producer
	state map[string]signal.State // resource -> last state
	tick  int
}

func newSource(p, probe *producer) *source {
	return &source{p: p, probe: probe, state: map[string]signal.State{}}
}

var sharedResources = []string{"ic-paris-1", "ic-paris-2", "ic-lyon-1"}

func (s *source) run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.tick++
		if err := s.step(); err != nil && ctx.Err() == nil {
			fmt.Printf("demo source: %v\n", err)
		}
	}
}

func (s *source) step() error {
	switch {
	case s.tick%11 == 0:
		ev, err := s.probe.event("congestion", sharedService, "ic-paris-1", signal.Raised, "WARN", congestionData("ic-paris-1", 140))
		if err != nil {
			return err
		}
		_, err = s.probe.publish(ev) // refused: utilisation over 100%
		return err
	case s.tick%7 == 0:
		ev, err := s.p.event("congestion", privateService, "p-core-3", signal.Raised, "WARN", congestionData("p-core-3", 91))
		if err != nil {
			return err
		}
		_, err = s.p.publish(ev)
		return err
	}
	res := sharedResources[rand.IntN(len(sharedResources))]
	next := map[signal.State]signal.State{"": signal.Raised, signal.Raised: signal.Updated, signal.Updated: signal.Cleared, signal.Cleared: signal.Raised}[s.state[res]]
	s.state[res] = next
	var ev *signal.Event
	var err error
	if res == "ic-lyon-1" {
		sev := map[signal.State]string{signal.Raised: "ERROR", signal.Updated: "FATAL", signal.Cleared: "INFO"}[next]
		ev, err = s.p.event("fault", sharedService, res, next, sev, faultData(res, next))
	} else {
		util := map[signal.State]float64{signal.Raised: 92, signal.Updated: 97.5, signal.Cleared: 61}[next]
		sev := map[signal.State]string{signal.Raised: "WARN", signal.Updated: "ERROR", signal.Cleared: "INFO"}[next]
		ev, err = s.p.event("congestion", sharedService, res, next, sev, congestionData(res, util))
	}
	if err != nil {
		return err
	}
	ev.CorrelationID = "inc-" + res
	_, err = s.p.publish(ev)
	return err
}

func congestionData(link string, util float64) map[string]any {
	return map[string]any{
		"link":               map[string]any{"id": link, "kind": "interconnect", "peer": opB},
		"direction":          "egress",
		"utilisationPercent": util,
		"packetLossPercent":  max(0, (util-90)/10),
		"queueDelayMs":       max(0.5, (util-80)*0.8),
		"trafficClasses":     []string{"AF41", "BE"},
	}
}

func faultData(res string, st signal.State) map[string]any {
	sev := map[signal.State]string{signal.Raised: "MAJOR", signal.Updated: "CRITICAL", signal.Cleared: "CLEARED"}[st]
	d := map[string]any{
		"alarmType":         "communicationsAlarm",
		"perceivedSeverity": sev,
		"probableCause":     "lossOfSignal",
		"specificProblem":   "LOS on the 100GE port facing " + opB,
		"alarmedObject":     map[string]any{"id": res, "type": "interconnect"},
		"alarmRaisedTime":   time.Now().UTC().Format(time.RFC3339),
		"serviceAffecting":  true,
		"affectedService":   []map[string]any{{"id": sharedService}},
	}
	if st == signal.Cleared {
		d["alarmClearedTime"] = time.Now().UTC().Format(time.RFC3339)
	}
	return d
}
