//go:build unix

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/natstest"
	"github.com/anfed/anfed/internal/nodetest"
	"github.com/anfed/anfed/internal/signal"
)

// examples/federation as its users run it: run.sh starts op-a, op-b and
// op-c from op-a/b/c.yaml as three separate `anfed serve` processes, and
// signals cross both leaf links as the three policies say. The folder is
// copied to a temporary directory with its fixed loopback ports replaced by
// free ones, so that the test does not depend on (or take) 4222 and the
// others; nothing else of the files changes.
func TestFederationExampleRunsThreeProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("builds anfed and runs three nodes as processes")
	}
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("bash is not on PATH: run.sh is not tested")
	}
	bin := buildAnfed(t)
	dir, addr := copyFederationExample(t)
	code, stdout, stderr := anfedCmd(t, bin, "validate", filepath.Join(dir, "op-a.yaml"), filepath.Join(dir, "op-b.yaml"), filepath.Join(dir, "op-c.yaml"))
	require.Equal(t, 0, code, "the example's policies validate:\n%s%s", stdout, stderr)

	var out nodetest.Output
	cmd := exec.Command(bash, filepath.Join(dir, "run.sh"))
	cmd.Env = append(os.Environ(), "ANFED="+bin)
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // the script and its three nodes
	require.NoError(t, cmd.Start())
	pgid := cmd.Process.Pid
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = syscall.Kill(-pgid, syscall.SIGKILL) // whatever is left after a failure
		<-exited
		if t.Failed() {
			t.Logf("run.sh output:\n%s", tail(out.String(), 60))
		}
	})

	conn := func(op, user, pass string) *nats.Conn {
		// Ready (/readyz): its intake answers, its links have pipelines.
		waitReady(t, addr[op+"-http"])
		var nc *nats.Conn
		natstest.WaitFor(t, 10*time.Second, func() error {
			var err error
			nc, err = nats.Connect("nats://"+addr[op+"-client"], nats.UserInfo(user, pass))
			return err
		})
		t.Cleanup(nc.Close)
		return nc
	}
	ncA := conn("op-a", "assurance", "change-me-assurance-a")
	ncB := conn("op-b", "closed-loop", "change-me-closed-loop-b")
	ncC := conn("op-c", "closed-loop", "change-me-closed-loop-c")

	congestion := `{"link":{"id":"ic-paris-1","kind":"interconnect","peer":"op-b"},"direction":"egress","utilisationPercent":93,"packetLossPercent":0.6,"queueDelayMs":11,"trafficClasses":["AF41"]}`
	// op-a's private service is exported to nobody; published first, so
	// that it would have crossed before the shared one if it crossed.
	publishExample(t, ncA, "op-a", "congestion", "core-backbone/par-core-1", "private-1", congestion)
	publishExample(t, ncA, "op-a", "congestion", "vpn-acme/ic-paris-1", "shared-1", congestion)
	arrives(t, ncB, "an.sig.op-a.congestion.vpn-acme.ic-paris-1", "shared-1")
	_, err = lastFor(t, ncB, "an.sig.op-a.congestion.core-backbone.>")
	assert.ErrorIs(t, err, jetstream.ErrMsgNotFound, "op-a's private service stays at op-a")

	mitigation := `{"action":"reroute","status":"in-progress","respondsTo":[{"source":"anfed://op-a/assurance","id":"shared-1"}],"target":{"id":"ic-paris-1","type":"interconnect"},"expectedEffect":"utilisation of ic-paris-1 below 80%"}`
	publishExample(t, ncB, "op-b", "mitigation", "vpn-acme/ic-paris-1", "mit-1", mitigation)
	arrives(t, ncA, "an.sig.op-b.mitigation.vpn-acme.ic-paris-1", "mit-1")

	risk := fmt.Sprintf(`{"slaId":"sla-op-c-transit","metric":"latency.one-way.p95","objective":{"comparator":"<=","target":30,"unit":"ms"},"predictedValue":38,"probability":0.7,"horizon":%q,"confidence":0.6,"model":"example"}`,
		time.Now().Add(time.Hour).UTC().Format(time.RFC3339))
	publishExample(t, ncB, "op-b", "sla-risk", "transit-c/ic-paris-1", "risk-1", risk)
	arrives(t, ncC, "an.sig.op-b.sla-risk.transit-c.ic-paris-1", "risk-1")
	_, err = lastFor(t, ncA, "an.sig.op-b.sla-risk.>")
	assert.ErrorIs(t, err, jetstream.ErrMsgNotFound, "op-b tells op-c, not op-a, of its transit risk")

	// SIGTERM to the script stops all three nodes, each gracefully.
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-exited:
	case <-time.After(60 * time.Second):
		t.Fatal("run.sh still running 60 s after SIGTERM")
	}
	natstest.WaitFor(t, 30*time.Second, func() error {
		if err := syscall.Kill(-pgid, 0); !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("processes of run.sh still running (%v)", err)
		}
		return nil
	})
	assert.Equal(t, 3, strings.Count(out.String(), "node stopped"), "three nodes drained and stopped:\n%s", tail(out.String(), 30))
}

// federationPorts are examples/federation's loopback ports, by role.
var federationPorts = map[string]string{
	"4222": "op-a-client", "4223": "op-b-client", "4224": "op-c-client",
	"7422": "op-a-leaf", "7423": "op-b-leaf",
	"8440": "op-a-http", "8441": "op-b-http", "8442": "op-c-http",
}

// copyFederationExample copies examples/federation (policies, keys, run.sh)
// to a temporary directory with every loopback port replaced by a free
// one, and returns the directory and the new addresses by role
// ("op-a-client", "op-b-leaf", ...).
func copyFederationExample(t *testing.T) (string, map[string]string) {
	t.Helper()
	src := "../../examples/federation"
	dst := t.TempDir()
	roles := federationPorts
	addr := map[string]string{}
	for _, role := range roles {
		addr[role] = natstest.FreeRestartAddr(t) // nodes restart on them
	}
	loopback := regexp.MustCompile(`127\.0\.0\.1:(\d+)`)
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			if rel == "data" {
				return filepath.SkipDir // a local run's storage
			}
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		if rel == "anfed" {
			return nil // a local build
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		info, _ := d.Info()
		if strings.HasSuffix(p, ".yaml") {
			b = loopback.ReplaceAllFunc(b, func(m []byte) []byte {
				role, ok := roles[string(loopback.FindSubmatch(m)[1])]
				require.True(t, ok, "%s: a port the test does not know: %s", rel, m)
				return []byte(addr[role])
			})
		}
		return os.WriteFile(filepath.Join(dst, rel), b, info.Mode().Perm())
	})
	require.NoError(t, err)
	for _, f := range []string{"op-a.yaml", "op-b.yaml", "op-c.yaml", "run.sh", "keys/op-a/signing.nk"} {
		require.FileExists(t, filepath.Join(dst, f))
	}
	return dst, addr
}

// publishExample publishes a signal of origin with the given data and
// requires it accepted.
func publishExample(t *testing.T, nc *nats.Conn, origin, class, subj, id, data string) {
	t.Helper()
	ev := &signal.Event{
		ID: id, Source: "anfed://" + origin + "/example-test", Type: "net.anfed." + class + ".v1",
		Subject: subj, Time: time.Now().UTC(), Origin: origin, State: signal.Raised,
		Data: json.RawMessage(data),
	}
	m, err := nc.Request("an.pub", ev.Encode(), 15*time.Second)
	require.NoError(t, err)
	a, err := signal.ParseAnswer(m.Data)
	require.NoError(t, err)
	require.Equal(t, signal.StatusAccepted, a.Status, "%s at %s: %s %s", id, origin, a.Reason, a.Error)
}

// lastFor reads the last stored signal on a subject (wildcards allowed)
// of the node nc is connected to.
func lastFor(t *testing.T, nc *nats.Conn, subj string) (*signal.Event, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	st, err := js.Stream(ctx, "ANFED_SIGNALS")
	if err != nil {
		return nil, err
	}
	m, err := st.GetLastMsgForSubject(ctx, subj)
	if err != nil {
		return nil, err
	}
	return signal.DecodeStructured(m.Data)
}

// arrives waits until the node nc is connected to has stored signal id on
// subj: it crossed the leaf link and the peer's import policy.
func arrives(t *testing.T, nc *nats.Conn, subj, id string) {
	t.Helper()
	natstest.WaitFor(t, 60*time.Second, func() error {
		ev, err := lastFor(t, nc, subj)
		if err != nil {
			return fmt.Errorf("%s: %w", subj, err)
		}
		if ev.ID != id {
			return fmt.Errorf("%s: last is %s, want %s", subj, ev.ID, id)
		}
		return nil
	})
}
