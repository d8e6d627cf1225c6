package bridge

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/inspect"
	"github.com/anfed/anfed/internal/schemacheck"
)

// pureNode serves the mapping functions, which only read the node's id;
// it has no NATS behind it.
type pureNode struct{}

func (pureNode) ID() string { return "op-a" }
func (pureNode) Connect(...nats.Option) (*nats.Conn, error) {
	return nil, errors.New("no NATS in a mapping fuzz")
}

func seeds(f *testing.F, names ...string) {
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join("testdata", n))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

func inspector(f *testing.F) *inspect.Inspector {
	cat, err := schemacheck.Load()
	if err != nil {
		f.Fatal(err)
	}
	return inspect.New(cat, 0)
}

// Whatever a VES request holds, mapping it never panics, and every
// signal it makes is one intake takes: valid envelope, valid data.
func FuzzVESMapping(f *testing.F) {
	seeds(f, "ves-fault.json", "ves-fault-normal.json", "ves-measurement.json")
	insp := inspector(f)
	b := &Bridges{d: Deps{Node: pureNode{}}}
	v := &ves{b: b, cfg: &config.VESBridge{KPIs: []config.VESKPI{
		{Field: "5g-kpis/DRB.UEThpDl", KPI: "throughput.dl", Unit: "Mbit/s", Expected: 200, Threshold: 150, Crossing: "below"},
		{Field: "meanRequestLatency", KPI: "latency.request.mean", Unit: "ms", Expected: 0, Threshold: 40, Crossing: "above"},
	}}, service: "ves", alarmType: "communicationsAlarm", active: map[string]bool{}, seeded: true}
	f.Fuzz(func(t *testing.T, body []byte) {
		raw := body
		var req struct {
			Event json.RawMessage `json:"event"`
		}
		if json.Unmarshal(body, &req) == nil && req.Event != nil {
			raw = req.Event
		}
		evs, _, err := v.mapEvent(raw, "event", map[string]bool{})
		if err != nil {
			var bi *badInput
			if !errors.As(err, &bi) {
				t.Fatalf("an error that is not a bad-input answer: %v", err)
			}
			return
		}
		for _, ev := range evs {
			if _, _, err := insp.Full(nil, ev.Encode()); err != nil {
				t.Fatalf("the bridge made a signal intake refuses: %v\n%s", err, ev.Encode())
			}
		}
	})
}

// Whatever a TMF642 notification holds, mapping it never panics, and the
// signal it makes is one intake takes.
func FuzzTMF642Mapping(f *testing.F) {
	seeds(f, "tmf642-alarm-create.json", "tmf642-alarm-change.json", "tmf642-alarm-clear.json")
	insp := inspector(f)
	tm := &tmf642{b: &Bridges{d: Deps{Node: pureNode{}}}, service: "tmf642"}
	f.Fuzz(func(t *testing.T, body []byte) {
		for res := range tmfEvents {
			ev, err := tm.mapNotification(res, body)
			if errors.Is(err, errEcho) {
				continue
			}
			if err != nil {
				var bi *badInput
				if !errors.As(err, &bi) {
					t.Fatalf("an error that is not a bad-input answer: %v", err)
				}
				continue
			}
			if _, _, err := insp.Full(nil, ev.Encode()); err != nil {
				t.Fatalf("the bridge made a signal intake refuses: %v\n%s", err, ev.Encode())
			}
			if _, err := tmfNotification(ev); err != nil {
				t.Fatalf("a fault the bridge made does not map back to TMF642: %v", err)
			}
		}
	})
}
