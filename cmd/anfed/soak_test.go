package main

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/natstest"
	"github.com/anfed/anfed/internal/signal"
	"github.com/anfed/anfed/schemas"
)

// The soak: three operators as `anfed serve` processes, fully meshed by
// leaf links through TCP proxies, each with a producer of mixed signals
// and a closed loop of everything it stores; random link cuts, graceful
// restarts and kill -9 of nodes while the load runs; then an invariant
// checker. CI runs one minute of it in a step of its own (-anfed.soak=1m),
// so that its chaos does not share the machine with the latency tests;
// `task soak` runs 30.
var (
	soakFor  = flag.Duration("anfed.soak", 0, "run the chaos soak for this long (CI: 1m; task soak: 30m)")
	soakSeed = flag.Uint64("anfed.seed", 0, "the chaos soak's random seed (0: from the clock; the test logs it)")
)

var soakOps = []string{"op-a", "op-b", "op-c"}

func TestSoak(t *testing.T) {
	if *soakFor <= 0 {
		t.Skip("the chaos soak runs with -anfed.soak=DURATION (CI: 1m, task soak: 30m)")
	}
	seed := *soakSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	rng := rand.New(rand.NewPCG(seed, 0))
	t.Logf("soak for %v, seed %d (rerun with -anfed.seed=%d)", *soakFor, seed, seed)

	bin := buildAnfed(t)
	f := newSoakFederation(t, bin)
	for _, id := range soakOps {
		f.start(id)
	}
	loops := map[string]*helperLoop{}
	prods := map[string]*producer{}
	for _, id := range soakOps {
		loops[id] = startHelperLoopAs(t, f.clientURL[id], loopUser, loopPass, "an.sig.>")
	}
	const perNode = 100 // signals/s from each operator, from 2 sources
	for _, id := range soakOps {
		prods[id] = startProducerAs(t, f.clientURL[id], id, producerUser, producerPass, soakSignal, 2, perNode)
	}

	time.Sleep(5 * time.Second) // warm up
	base := map[string]resources{}
	for _, id := range soakOps {
		base[id] = f.resources(t, id)
	}

	// Resources over time, in the log: growth shows as a trend.
	stopSampling := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		every := max(10*time.Second, *soakFor/30)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-stopSampling:
				return
			case <-tick.C:
			}
			var parts []string
			for _, id := range soakOps {
				if r, ok := f.tryResources(id); ok {
					parts = append(parts, id+": "+r.String())
				}
			}
			t.Logf("resources: %s", strings.Join(parts, "; "))
		}
	}()

	// Chaos until the end, at random times; the first three events are one
	// of each kind, so that even a one-minute soak tries each.
	end := time.Now().Add(*soakFor)
	kinds := []string{"cut", "restart", "kill9"}
	rng.Shuffle(len(kinds), func(i, j int) { kinds[i], kinds[j] = kinds[j], kinds[i] })
	gap := func() time.Duration {
		if *soakFor <= 5*time.Minute {
			return time.Duration(5+rng.IntN(6)) * time.Second
		}
		return time.Duration(30+rng.IntN(150)) * time.Second // every few minutes
	}
	events := map[string]int{}
	restarts := map[string]int{}
	for n := 0; ; n++ {
		wait := gap()
		if time.Until(end) < wait+10*time.Second {
			break
		}
		time.Sleep(wait)
		kind := kinds[rng.IntN(len(kinds))]
		if n < len(kinds) {
			kind = kinds[n]
		}
		events[kind]++
		switch kind {
		case "cut":
			link := f.linkNames[rng.IntN(len(f.linkNames))]
			d := time.Duration(1000+rng.IntN(7000)) * time.Millisecond
			t.Logf("chaos %d: cut link %s for %v", n, link, d)
			f.proxies[link].Cut()
			time.Sleep(d)
			f.proxies[link].Restore()
		case "restart":
			id := soakOps[rng.IntN(len(soakOps))]
			t.Logf("chaos %d: SIGTERM %s, start it again", n, id)
			f.procs[id].term(t)
			f.start(id)
			restarts[id]++
		case "kill9":
			id := soakOps[rng.IntN(len(soakOps))]
			down := time.Duration(500+rng.IntN(2500)) * time.Millisecond
			t.Logf("chaos %d: kill -9 %s, start it again after %v", n, id, down)
			f.procs[id].kill9(t)
			time.Sleep(down)
			f.start(id)
			restarts[id]++
		}
	}
	time.Sleep(time.Until(end) - 5*time.Second)
	close(stopSampling)
	<-sampled
	final := map[string]resources{}
	for _, id := range soakOps {
		final[id] = f.resources(t, id)
	}

	// Stop the load; every acknowledged signal must reach every closed
	// loop (all three import everything from both peers).
	acked := map[string][]string{}
	total := 0
	for _, id := range soakOps {
		acked[id] = prods[id].finish()
		total += len(acked[id])
	}
	var all []string
	for _, id := range soakOps {
		all = append(all, acked[id]...)
	}
	drained := time.Now()
	for deadline := time.Now().Add(90 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		missing := 0
		for _, id := range soakOps {
			missing += loops[id].missing(all)
		}
		if missing == 0 {
			break
		}
	}
	drain := time.Since(drained)
	for _, id := range soakOps {
		loops[id].stop()
	}

	// The checker.
	for _, id := range soakOps {
		l := loops[id]
		l.mu.Lock()
		lost, twice, invented := 0, 0, 0
		for _, k := range all {
			if l.calls[k] == 0 {
				lost++
				if lost <= 3 {
					t.Logf("%s's loop never got %s", id, k)
				}
			}
		}
		for k, n := range l.calls {
			if n > 1 {
				twice++
			}
			if !prods[originOfKey(k)].hasSent(k) {
				invented++
			}
		}
		st := l.l.Stats()
		t.Logf("%s: closed loop handled %d distinct signals (acknowledged by the three producers: %d): lost %d, handled twice %d, "+
			"not sent by any producer %d, per-source order violations %d; acked again without the handler %d; restarted %d times",
			id, len(l.calls), total, lost, twice, invented, len(l.order), st.AckedAgain, restarts[id])
		assert.Zero(t, lost, "%s: acknowledged signals lost", id)
		assert.Zero(t, twice, "%s: duplicates delivered to the closed loop", id)
		assert.Zero(t, invented, "%s: signals nobody sent", id)
		assert.Empty(t, l.order, "%s: per-source order", id)
		l.mu.Unlock()

		b, e := base[id], final[id]
		t.Logf("%s: resources after warm-up %s; at the end %s", id, b, e)
		// A node restarted in between is a new process in the same
		// state: it must not hold more than the first did either.
		assert.LessOrEqual(t, e.fds, b.fds+16, "%s: file descriptors grew", id)
		assert.LessOrEqual(t, e.rssKiB, b.rssKiB*2+64<<10, "%s: memory grew", id)
		if b.goroutines > 0 && e.goroutines > 0 {
			assert.LessOrEqual(t, e.goroutines, b.goroutines+b.goroutines/2+20, "%s: goroutines grew", id)
		}
	}
	t.Logf("soak %v, seed %d: chaos events %v; %d signals acknowledged, all in every closed loop %v after the load stopped",
		*soakFor, seed, events, total, drain.Round(time.Millisecond))
	assert.NotZero(t, total, "the load ran")
	for _, id := range soakOps {
		f.procs[id].term(t)
	}
}

// originOfKey is the origin of a source+id key ("anfed://op-a/probe-0 s0-1").
func originOfKey(k string) string {
	rest := strings.TrimPrefix(k, "anfed://")
	if i := strings.IndexByte(rest, '/'); i > 0 {
		return rest[:i]
	}
	return ""
}

func (p *producer) hasSent(k string) bool {
	if p == nil {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sentKeys[k]
}

// soakExamples are the catalog's valid examples, one per class.
var soakExamples = func() []*signal.Event {
	var out []*signal.Event
	for _, c := range schemas.Classes {
		b, err := schemas.FS.ReadFile("examples/" + c + ".valid.json")
		if err != nil {
			panic(err)
		}
		ev, err := signal.DecodeStructured(b)
		if err != nil {
			panic(fmt.Sprintf("%s: %v", c, err))
		}
		out = append(out, ev)
	}
	return out
}()

// soakSignal is source s's i-th signal from origin: each class in turn,
// from the catalog's examples.
func soakSignal(origin string, s, i int) *signal.Event {
	ev := *soakExamples[(s+i)%len(soakExamples)]
	ev.ID = fmt.Sprintf("s%d-%d", s, i)
	ev.Source = sourceOf(origin, s)
	ev.Origin = origin
	ev.Path = nil
	ev.Sequence = fmt.Sprintf("%020d", i)
	ev.Time = time.Now().UTC().Truncate(time.Millisecond)
	ev.ExpiryTime = time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	ev.DSSEMaterial, ev.SignedExtAttrs = "", ""
	return &ev
}

// resources is what a node process holds.
type resources struct {
	fds, rssKiB, threads, goroutines int
}

func (r resources) String() string {
	g := "n/a"
	if r.goroutines > 0 {
		g = strconv.Itoa(r.goroutines)
	}
	return fmt.Sprintf("%d fds, %d MiB RSS, %d threads, %s goroutines", r.fds, r.rssKiB>>10, r.threads, g)
}

// resources reads id's process from /proc.
func (f *federation) resources(t *testing.T, id string) resources {
	t.Helper()
	r, ok := f.tryResources(id)
	require.True(t, ok, "%s: /proc", id)
	return r
}

// tryResources is resources for any goroutine; false when the process is
// gone (a restart under way).
func (f *federation) tryResources(id string) (resources, bool) {
	f.mu.Lock()
	p := f.procs[id]
	f.mu.Unlock()
	var r resources
	if p == nil {
		return r, false
	}
	pid := p.cmd.Process.Pid
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return r, false
	}
	r.fds = len(ents)
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return r, false
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		n, _ := strconv.Atoi(strings.Fields(v + " 0")[0])
		switch k {
		case "VmRSS":
			r.rssKiB = n
		case "Threads":
			r.threads = n
		}
	}
	r.goroutines = f.goroutines(id)
	return r, true
}

// newSoakFederation writes three policies: op-a accepts op-b and op-c,
// op-b accepts op-c; every link runs through a proxy the test can cut.
// Every operator exports and imports every class.
func newSoakFederation(t *testing.T, bin string) *federation {
	f := &federation{t: t, bin: bin, dir: t.TempDir(), configs: map[string]string{}, clientURL: map[string]string{},
		procs: map[string]*proc{}, starts: map[string]int{}, proxies: map[string]*natstest.Proxy{}}
	t.Cleanup(f.cleanup)
	keys := map[string]string{}
	for _, id := range soakOps {
		keys[id] = f.initKeys(id)
	}
	client, leaf, http := map[string]string{}, map[string]string{}, map[string]string{}
	for _, id := range soakOps {
		client[id], leaf[id], http[id] = natstest.FreeRestartAddr(t), natstest.FreeRestartAddr(t), natstest.FreeRestartAddr(t)
		f.clientURL[id] = "nats://" + client[id]
	}
	f.httpAddr = http
	// dialer -> acceptor
	links := [][2]string{{"op-b", "op-a"}, {"op-c", "op-a"}, {"op-c", "op-b"}}
	peers := map[string][]string{}
	for _, l := range links {
		name := l[0] + "->" + l[1]
		f.proxies[name] = natstest.StartProxy(t, leaf[l[1]])
		f.linkNames = append(f.linkNames, name)
		pass := "issued-by-" + l[1] + "-to-" + l[0]
		peers[l[1]] = append(peers[l[1]], fmt.Sprintf(`  - id: %s
    accept: {user: %s, password: %s}
    export: {classes: ["*"], services: ["*"]}
    import: {classes: ["*"]}
    signing_key: %s
`, l[0], l[0], pass, keys[l[0]]))
		peers[l[0]] = append(peers[l[0]], fmt.Sprintf(`  - id: %s
    dial: {url: "nats-leaf://%s", user: %s, password: %s}
    export: {classes: ["*"], services: ["*"]}
    import: {classes: ["*"]}
    signing_key: %s
`, l[1], f.proxies[name].Addr(), l[0], pass, keys[l[1]]))
	}
	for _, id := range soakOps {
		leafSection := ""
		if id != "op-c" {
			leafSection = fmt.Sprintf("  leafnodes:\n    listen: %s\n", leaf[id])
		}
		f.write(id, fmt.Sprintf(`operator:
  id: %s
  signing_key_file: keys/signing.nk
nats:
  client:
    listen: %s
%s  users:
    - name: %s
      password: %s
    - name: %s
      password: %s
storage:
  dir: ./data
  sync: 2m
%speers:
%s`, id, client[id], leafSection, producerUser, producerPass, loopUser, loopPass, f.httpSection(id), strings.Join(peers[id], "")))
	}
	var files []string
	for _, id := range soakOps {
		files = append(files, f.configs[id])
	}
	code, stdout, stderr := anfedCmd(t, bin, append([]string{"validate"}, files...)...)
	require.Equal(t, 0, code, "validate: %s%s", stdout, stderr)
	return f
}

// goroutines reads go_goroutines from id's /metrics (0: not served).
func (f *federation) goroutines(id string) int {
	body, err := httpGet("http://" + f.httpAddr[id] + "/metrics")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, "go_goroutines "); ok {
			n, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return int(n)
		}
	}
	return 0
}
