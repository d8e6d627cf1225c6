package main

import (
	"hash/fnv"
	"math"
	"math/rand/v2"
)

// kpi describes one KPI of a service: its baseline, the threshold whose
// crossing raises a performance-deviation, the level it must come back to
// before the deviation clears (hysteresis), and the SLA bound the sla-risk
// prediction watches.
type kpi struct {
	Name     string  // KPI name in the signal (catalog pattern ^[a-z][a-z0-9_.-]*$)
	Resource string  // resource part of the condition key: one condition per KPI
	Unit     string  // unit of every value
	Above    bool    // a deviation is above the baseline (latency, loss) or below it (throughput)
	Expected float64 // baseline
	Raise    float64 // a deviation is raised beyond this
	Clear    float64 // and cleared once back within this
	SLA      float64 // the SLA objective: Above ? value <= SLA : value >= SLA
	Noise    float64 // standard deviation of the measurement noise
}

// kpis are the synthetic KPIs every service has.
var kpis = []kpi{
	{Name: "latency.one-way.p95", Resource: "latency-p95", Unit: "ms", Above: true, Expected: 20, Raise: 30, Clear: 26, SLA: 40, Noise: 1.2},
	{Name: "packet-loss", Resource: "packet-loss", Unit: "%", Above: true, Expected: 0.05, Raise: 0.5, Clear: 0.3, SLA: 1, Noise: 0.02},
	{Name: "throughput", Resource: "throughput", Unit: "Mbit/s", Above: false, Expected: 1000, Raise: 800, Clear: 850, SLA: 600, Noise: 15},
}

// beyond reports whether v is past bound on the KPI's bad side.
func (k kpi) beyond(v, bound float64) bool {
	if k.Above {
		return v > bound
	}
	return v < bound
}

// deviation is |v - Expected| in percent of Expected.
func (k kpi) deviation(v float64) float64 {
	return math.Abs(v-k.Expected) / k.Expected * 100
}

// series is one KPI's synthetic measurements: the baseline with noise, and
// now and then an episode that ramps away from it (towards and sometimes
// past the SLA bound), holds, and ramps back. It is seeded: the same seed,
// service and KPI give the same values.
type series struct {
	k   kpi
	rng *rand.Rand
	// the current episode: steps left in each phase, and its peak offset
	up, hold, down int
	peak, offset   float64
	step           float64
}

func newSeries(seed uint64, service string, k kpi) *series {
	h := fnv.New64a()
	h.Write([]byte(service + "/" + k.Name))
	return &series{k: k, rng: rand.New(rand.NewPCG(seed, h.Sum64()))}
}

// next returns the next measurement.
func (s *series) next() float64 {
	switch {
	case s.up > 0:
		s.up--
		s.offset += s.step
	case s.hold > 0:
		s.hold--
	case s.down > 0:
		s.down--
		s.offset -= s.step
		if s.down == 0 {
			s.offset = 0
		}
	case s.rng.Float64() < 0.04: // an episode starts
		// Its peak: from half-way to the raise threshold to 1.5 times the
		// distance to the SLA bound.
		span := math.Abs(s.k.SLA - s.k.Expected)
		s.peak = span * (0.3 + 1.2*s.rng.Float64())
		if !s.k.Above {
			s.peak = -s.peak
		}
		s.up = 4 + s.rng.IntN(12)
		s.hold = 2 + s.rng.IntN(10)
		s.down = 3 + s.rng.IntN(8)
		s.step = s.peak / float64(s.up)
	}
	v := s.k.Expected + s.offset + s.rng.NormFloat64()*s.k.Noise
	return max(v, 0)
}

// deviationDetector turns measurements into performance-deviation
// transitions with hysteresis: raised after confirm samples beyond Raise,
// cleared after confirm samples back within Clear, updated while raised when
// the deviation moved by at least updateStep percentage points since the
// last signal. A value between Clear and Raise changes nothing.
type deviationDetector struct {
	k          kpi
	confirm    int
	updateStep float64

	on        bool
	streak    int     // consecutive samples pointing at the other state
	published float64 // deviation in the last signal
}

// transition is what a detector says about one sample: "" (nothing),
// raised, updated or cleared.
type transition string

const (
	none    transition = ""
	raised  transition = "raised"
	updated transition = "updated"
	cleared transition = "cleared"
)

func (d *deviationDetector) observe(v float64) transition {
	dev := d.k.deviation(v)
	if !d.on {
		if d.k.beyond(v, d.k.Raise) {
			d.streak++
		} else {
			d.streak = 0
		}
		if d.streak >= d.confirm {
			d.on, d.streak, d.published = true, 0, dev
			return raised
		}
		return none
	}
	if !d.k.beyond(v, d.k.Clear) {
		d.streak++
	} else {
		d.streak = 0
	}
	if d.streak >= d.confirm {
		d.on, d.streak = false, 0
		return cleared
	}
	if d.streak == 0 && math.Abs(dev-d.published) >= d.updateStep {
		d.published = dev
		return updated
	}
	return none
}

// riskPredictor fits a straight line to the last window samples and
// extrapolates it horizon samples ahead. A risk is raised when the
// prediction is past the SLA bound while the trend points at it, updated
// when the probability moved by 0.1 or more (or the predicted value by the
// whole distance from the baseline to the bound), and cleared when the prediction is back
// inside by a margin (a tenth of the same distance): hysteresis again.
type riskPredictor struct {
	k       kpi
	window  int
	horizon int

	xs         []float64
	on         bool
	published  float64 // predicted value in the last signal
	publishedP float64 // and its probability
}

// prediction is the predictor's answer for one sample.
type prediction struct {
	Value       float64 // predicted at the horizon
	Probability float64 // that the objective is missed by then
	Confidence  float64 // the fit's coefficient of determination
}

func (r *riskPredictor) observe(v float64) (transition, prediction) {
	r.xs = append(r.xs, v)
	if len(r.xs) > r.window {
		r.xs = r.xs[1:]
	}
	if len(r.xs) < r.window {
		return none, prediction{}
	}
	slope, intercept, r2 := fit(r.xs)
	at := float64(len(r.xs)-1+r.horizon)*slope + intercept
	span := math.Abs(r.k.SLA - r.k.Expected)
	p := prediction{Value: at, Confidence: clamp(r2, 0, 1)}
	// How far past the bound the prediction lands, in tenths of the span,
	// through a logistic: 0.5 at the bound, 0.88 two tenths past it.
	past := (at - r.k.SLA) / span * 10
	if !r.k.Above {
		past = -past
	}
	p.Probability = round3(1 / (1 + math.Exp(-past)))
	towards := slope > 0 == r.k.Above && slope != 0
	margin := span / 10
	switch {
	case !r.on && r.k.beyond(at, r.k.SLA) && towards:
		r.on, r.published, r.publishedP = true, at, p.Probability
		return raised, p
	case r.on && !r.k.beyond(at, r.k.SLA+signed(r.k, -margin)):
		r.on = false
		return cleared, p
	case r.on && (math.Abs(p.Probability-r.publishedP) >= 0.1 || math.Abs(at-r.published) >= span):
		r.published, r.publishedP = at, p.Probability
		return updated, p
	}
	return none, p
}

// signed turns a margin towards the KPI's bad side (positive) or good side
// (negative) into a value offset.
func signed(k kpi, m float64) float64 {
	if k.Above {
		return m
	}
	return -m
}

// fit is the least-squares line through (i, xs[i]) and its R².
func fit(xs []float64) (slope, intercept, r2 float64) {
	n := float64(len(xs))
	var sx, sy, sxx, sxy float64
	for i, y := range xs {
		x := float64(i)
		sx += x
		sy += y
		sxx += x * x
		sxy += x * y
	}
	slope = (n*sxy - sx*sy) / (n*sxx - sx*sx)
	intercept = (sy - slope*sx) / n
	mean := sy / n
	var ssTot, ssRes float64
	for i, y := range xs {
		e := y - (slope*float64(i) + intercept)
		ssRes += e * e
		ssTot += (y - mean) * (y - mean)
	}
	if ssTot == 0 {
		return slope, intercept, 0
	}
	return slope, intercept, 1 - ssRes/ssTot
}

func clamp(v, lo, hi float64) float64 { return math.Min(hi, math.Max(lo, v)) }

func round3(v float64) float64 { return math.Round(v*1000) / 1000 }
