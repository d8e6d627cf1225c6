//go:build unix

package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/lease"
	"github.com/anfed/anfed/internal/natstest"
	"github.com/anfed/anfed/internal/nodetest"
)

// Failover against the real binary: op-a runs as two `anfed serve`
// processes on one three-server NATS cluster (R3, its servers configured
// from natsconf's output, as `anfed natsconf` writes it), linked to op-b's
// `anfed serve` on its embedded server. Under a stream of signals from
// op-a to op-b's closed loop, the process holding the link to op-b (named
// by /v1/peers' holder) is killed with SIGKILL, three times, and a new
// process started in its place. Another process must hold the link each
// time, the flow must go on, the closed loop must get every acknowledged
// signal once and in per-source order, and no two processes may have held
// the link at once (their logs' lease taken/ended lines).
func TestKill9Holder(t *testing.T) {
	if testing.Short() {
		t.Skip("builds anfed and runs three processes on a NATS cluster for ~1 min")
	}
	const (
		nkill = 3
		nsrc  = 4
		rate  = 100
	)
	bin := buildAnfed(t)
	f := &federation{t: t, bin: bin, dir: t.TempDir(), configs: map[string]string{}, clientURL: map[string]string{},
		procs: map[string]*proc{}, starts: map[string]int{}}
	t.Cleanup(f.cleanup)
	pubA, pubB := f.initKeys("op-a"), f.initKeys("op-b")

	bClient, bLeaf := natstest.FreeRestartAddr(t), natstest.FreeRestartAddr(t)
	f.clientURL["op-b"] = "nats://" + bClient
	f.write("op-b", fmt.Sprintf(`operator:
  id: op-b
  signing_key_file: keys/signing.nk
nats:
  client:
    listen: %s
  leafnodes:
    listen: %s
  users:
    - name: %s
      password: %s
storage:
  dir: ./data
  sync: 2m
http:
  listen: ""
peers:
  - id: op-a
    accept:
      user: op-a
      password: issued-by-b-to-a
    limits:
      max_connections: 3   # each of op-a's servers dials us
    export:
      classes: ["*"]
      services: ["*"]
    import:
      classes: ["*"]
      max_rate: 100000
    signing_key: %s
`, bClient, bLeaf, loopUser, loopPass, pubA))

	// op-a: one policy, written once per process for its own HTTP port
	// (a pod each, in Kubernetes).
	httpAddr := map[string]string{}
	writeA := func(urls []string) {
		for _, name := range []string{"a1", "a2"} {
			if httpAddr[name] == "" {
				httpAddr[name] = natstest.FreeAddr(t)
			}
			p := filepath.Join(f.dir, "op-a", name+".yaml")
			require.NoError(t, os.WriteFile(p, []byte(fmt.Sprintf(`operator:
  id: op-a
  signing_key_file: keys/signing.nk
nats:
  external:
    urls: ["%s"]
    credentials_dir: nats-creds
  users:
    - name: %s
      password: %s
storage:
  replicas: 3
http:
  listen: %s
peers:
  - id: op-b
    dial:
      url: nats-leaf://%s
      user: op-a
      password: issued-by-b-to-a
    export:
      classes: ["*"]
      services: ["*"]
    import:
      classes: ["*"]
    signing_key: %s
`, strings.Join(urls, `", "`), producerUser, producerPass, httpAddr[name], bLeaf, pubB)), 0o600))
			f.configs[name] = p
		}
	}
	writeA([]string{"nats://127.0.0.1:4222"}) // the cluster's URLs once it runs
	cfg, err := config.Load(f.configs["a1"])
	require.NoError(t, err, "op-a's policy")
	f.start("op-b")
	nodetest.StartCluster(t, cfg, nil) // natsconf's output for op-a's policy
	writeA(cfg.NATS.External.URLs)
	f.start("a1")
	f.start("a2")

	// holder asks a running process of op-a who works the link to op-b.
	holder := func() (string, error) {
		for _, name := range []string{"a1", "a2"} {
			if p := f.procs[name]; p == nil || p.exited() {
				continue
			}
			body, err := httpGet("http://" + httpAddr[name] + "/v1/peers")
			if err != nil {
				continue
			}
			var peers []struct {
				ID     string `json:"id"`
				Holder string `json:"holder"`
			}
			if err := json.Unmarshal([]byte(body), &peers); err != nil {
				return "", err
			}
			for _, p := range peers {
				if p.ID == "op-b" && p.Holder != "" {
					return p.Holder, nil
				}
			}
		}
		return "", fmt.Errorf("no process of op-a names a holder of the link to op-b")
	}
	// byPID is the process of op-a whose instance name (host/pid/random)
	// is h.
	byPID := func(h string) string {
		parts := strings.Split(h, "/")
		if len(parts) == 3 {
			pid, _ := strconv.Atoi(parts[1])
			for _, name := range []string{"a1", "a2"} {
				if p := f.procs[name]; p != nil && !p.exited() && p.cmd.Process.Pid == pid {
					return name
				}
			}
		}
		return ""
	}
	// holding waits until the holder the processes name is a running
	// process other than not, and returns it.
	holding := func(not string) string {
		var name string
		natstest.WaitFor(t, 60*time.Second, func() error {
			h, err := holder()
			if err != nil {
				return err
			}
			if name = byPID(h); name == "" || name == not {
				return fmt.Errorf("the holder, %q, is none of the running processes but %q", h, not)
			}
			return nil
		})
		return name
	}
	holding("")

	l := startLoop(t, f.clientURL["op-b"])
	// Each source waits for its answer before its next signal: the
	// queue group of op-a's processes keeps no order between requests
	// in flight at once (docs/external-nats.md).
	prod := startProducerSeq(t, strings.Join(cfg.NATS.External.URLs, ","), "op-a", producerUser, producerPass, killSignal, nsrc, rate)
	natstest.WaitFor(t, 30*time.Second, func() error {
		if n := len(prod.ackedNow()); n < 100 || l.missing(prod.ackedNow()[:50]) > 0 {
			return fmt.Errorf("flowing: %d acknowledged", n)
		}
		return nil
	})

	killedAt := map[int]time.Time{} // pid -> SIGKILL
	var kills []time.Time
	var flowing []time.Duration
	for i := range nkill {
		victim := holding("")
		pid := f.procs[victim].cmd.Process.Pid
		f.procs[victim].kill9(t)
		killed := time.Now()
		killedAt[pid] = killed
		kills = append(kills, killed)
		ackedBefore := len(prod.ackedNow()) // those after: answered after the kill
		// Flowing again: a signal acknowledged after the kill is at op-b.
		natstest.WaitFor(t, 60*time.Second, func() error {
			acked := prod.ackedNow()
			if len(acked) <= ackedBefore || l.missing(acked[ackedBefore:ackedBefore+1]) > 0 {
				return fmt.Errorf("no signal acknowledged after the kill at op-b yet (%d acknowledged)", len(acked))
			}
			return nil
		})
		flowing = append(flowing, time.Since(killed))
		// The processes name another holder, running.
		to := holding(victim)
		t.Logf("kill -9 %d: %s (pid %d) held the link, %s holds it now (by /v1/peers); signals acknowledged after the kill at op-b %v after it",
			i+1, victim, pid, to, flowing[i].Round(time.Millisecond))
		f.start(victim) // a new process in place of the killed one
	}
	acked := prod.finish()
	_, all := l.waitAll(acked, acked, time.Now(), 60*time.Second)
	assert.NotZero(t, all, "the closed loop got everything within 60 s")

	lost := l.missing(acked)
	l.mu.Lock()
	t.Logf("op-a→op-b: %d acknowledged at %d signals/s; lost %d, stored twice %d, redelivered after a confirmed ack %d, order violations %d",
		len(acked), rate, lost, l.storedTwice, len(l.forgotten), len(l.order))
	assert.Zero(t, lost, "acknowledged signals lost")
	assert.Zero(t, l.storedTwice, "stored twice at op-b")
	assert.Empty(t, l.forgotten, "redelivered after a confirmed ack")
	assert.Empty(t, l.order, "per-source order")
	l.mu.Unlock()

	// No two tenures of the link overlap: from each process's log, its
	// lease taken to its lease ended, or to its SIGKILL.
	spans := leaseSpans(t, f.logs, "link.op-b", killedAt)
	require.GreaterOrEqual(t, len(spans), nkill+1, "a tenure per kill and the last: %v", spans)
	for i, x := range spans {
		for _, y := range spans[i+1:] {
			if x.start.Before(y.end) && y.start.Before(x.end) {
				t.Errorf("%s and %s held the link at once", x, y)
			}
		}
	}
	// The link moved: from each kill to the next tenure's start.
	var moved []time.Duration
	for _, k := range kills {
		next := time.Time{}
		for _, sp := range spans {
			if sp.start.After(k) && (next.IsZero() || sp.start.Before(next)) {
				next = sp.start
			}
		}
		if assert.False(t, next.IsZero(), "a tenure began after the kill at %s", k.Format("15:04:05.000")) {
			moved = append(moved, next.Sub(k))
		}
	}
	t.Logf("tenures: %v", spans)
	// What op-b saw, from its log: its link never down (op-a's servers
	// hold it, not op-a's processes), a session that opened again at
	// each kill, none of op-a's conditions withdrawn at its End-of-RIB.
	var linkDown, sessionDown, eors, withdrawn int
	for _, line := range logLines(t, f.procs["op-b"].log) {
		var e struct {
			Message   string `json:"message"`
			Withdrawn int    `json:"withdrawn"`
		}
		_ = json.Unmarshal(line, &e)
		switch {
		case strings.HasPrefix(e.Message, "link down"):
			linkDown++
		case e.Message == "session down":
			sessionDown++
		case strings.HasPrefix(e.Message, "session: End-of-RIB from the peer"):
			eors++
			withdrawn += e.Withdrawn
		}
	}
	t.Logf("op-b saw: link down %d times, session down %d times, %d End-of-RIBs from op-a withdrawing %d conditions", linkDown, sessionDown, eors, withdrawn)
	assert.GreaterOrEqual(t, eors, nkill, "op-b heard op-a's refresh end after each kill")
	assert.Zero(t, linkDown, "op-b's link to op-a went down")
	assert.Zero(t, withdrawn, "op-a's conditions withdrawn at op-b")
	require.Len(t, moved, nkill)
	slices.Sort(moved)
	slices.Sort(flowing)
	t.Logf("%d kills (lease TTL %v): link moved median %v worst %v; flowing again median %v worst %v",
		nkill, lease.DefaultTTL, moved[len(moved)/2].Round(time.Millisecond), moved[len(moved)-1].Round(time.Millisecond),
		flowing[len(flowing)/2].Round(time.Millisecond), flowing[len(flowing)-1].Round(time.Millisecond))
}

// leaseSpan is one process's tenure of a lease, read from its log.
type leaseSpan struct {
	instance   string
	term       uint64
	start, end time.Time
}

func (s leaseSpan) String() string {
	return fmt.Sprintf("%s (term %d, %s–%s)", s.instance, s.term, s.start.Format("15:04:05.000"), s.end.Format("15:04:05.000"))
}

// leaseSpans reads the tenures of key from the processes' logs (`lease
// taken` to `lease ended`); a tenure with no end in its log ends when its
// process was killed (killedAt, by pid) or, still running, now.
func leaseSpans(t *testing.T, logs []string, key string, killedAt map[int]time.Time) []leaseSpan {
	var out []leaseSpan
	for _, lf := range logs {
		var open *leaseSpan
		for _, line := range logLines(t, lf) {
			var e struct {
				Lease    string    `json:"lease"`
				Term     uint64    `json:"term"`
				Instance string    `json:"instance"`
				Time     time.Time `json:"time"`
				Message  string    `json:"message"`
			}
			if json.Unmarshal(line, &e) != nil || e.Lease != key {
				continue
			}
			switch {
			case strings.HasPrefix(e.Message, "lease taken"):
				open = &leaseSpan{instance: e.Instance, term: e.Term, start: e.Time}
			case strings.HasPrefix(e.Message, "lease ended") && open != nil:
				open.end = e.Time
				out = append(out, *open)
				open = nil
			}
		}
		if open != nil {
			open.end = time.Now()
			if parts := strings.Split(open.instance, "/"); len(parts) == 3 {
				pid, _ := strconv.Atoi(parts[1])
				if at, ok := killedAt[pid]; ok {
					open.end = at
				}
			}
			out = append(out, *open)
		}
	}
	return out
}

// logLines is a process's log, a line each.
func logLines(t *testing.T, file string) [][]byte {
	fh, err := os.Open(file)
	require.NoError(t, err)
	defer fh.Close()
	var out [][]byte
	sc := bufio.NewScanner(fh)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		out = append(out, slices.Clone(sc.Bytes()))
	}
	return out
}
