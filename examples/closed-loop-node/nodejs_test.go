// Package closedloopnode runs the Node.js closed-loop example's own test
// (`node --test`) against a real anfed node. The example is JavaScript; this
// package holds only the Go test that starts the node.
package closedloopnode

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/node"
	"github.com/anfed/anfed/internal/origin"
	"github.com/anfed/anfed/internal/signal"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const user, password = "closed-loop", "loop-pass-123"

// tools finds node (20 or later) and npm, or skips the test — unless
// ANFED_REQUIRE_NODE=1, where a missing tool fails it (CI).
func tools(t *testing.T) (nodeBin, npmBin string) {
	t.Helper()
	miss := func(format string, args ...any) {
		msg := fmt.Sprintf(format, args...)
		if os.Getenv("ANFED_REQUIRE_NODE") == "1" {
			t.Fatalf("%s (ANFED_REQUIRE_NODE=1)", msg)
		}
		t.Skipf("%s: the Node.js example is not tested (set ANFED_REQUIRE_NODE=1 to fail instead)", msg)
	}
	nodeBin, err := exec.LookPath("node")
	if err != nil {
		miss("node is not on PATH")
	}
	npmBin, err = exec.LookPath("npm")
	if err != nil {
		miss("npm is not on PATH")
	}
	out, err := exec.Command(nodeBin, "--version").Output()
	if err != nil {
		miss("node --version: %v", err)
	}
	v := strings.TrimSpace(string(out))
	major, _ := strconv.Atoi(strings.SplitN(strings.TrimPrefix(v, "v"), ".", 2)[0])
	if major < 20 {
		miss("node %s is older than 20", v)
	}
	t.Logf("node %s, npm at %s", v, npmBin)
	return nodeBin, npmBin
}

// copyExample copies the example's sources (not node_modules) to a
// temporary directory, so that npm ci does not write into the repository.
func copyExample(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range []string{"package.json", "package-lock.json", "closed-loop.js", "test/closed-loop.test.js"} {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		require.NoError(t, os.MkdirAll(filepath.Join(dir, filepath.Dir(f)), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(dir, f), b, 0o644))
	}
	return dir
}

func command(t *testing.T, ctx context.Context, dir string, env []string, name string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	out, err := cmd.CombinedOutput()
	t.Logf("%s %s: %v in %v", filepath.Base(name), strings.Join(args, " "), errOr(err), time.Since(start).Round(time.Millisecond))
	return string(out), err
}

func errOr(err error) string {
	if err == nil {
		return "ok"
	}
	return err.Error()
}

// The Node.js example's test, against a real node on loopback: npm ci
// installs the pinned packages, node --test runs the loop; then the node's
// own stream is checked for what the loop did.
func TestNodeJSClosedLoop(t *testing.T) {
	nodeBin, npmBin := tools(t)
	kp, err := origin.NewSigningKey()
	require.NoError(t, err)
	cfg := &config.Config{
		Operator: config.Operator{ID: "op-b"},
		NATS: config.NATS{
			Client: config.Listener{Listen: "127.0.0.1:0"},
			Users:  []config.User{{Name: user, Password: password}},
		},
		Storage: config.Storage{
			Dir:             t.TempDir(),
			MaxAge:          config.Duration(time.Hour),
			MaxBytes:        config.ByteSize(64 << 20),
			DuplicateWindow: config.Duration(2 * time.Minute),
		},
	}
	n := node.New(cfg, node.WithSigningKey(kp), node.WithLogger(zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)))
	require.NoError(t, n.Start(context.Background()))
	defer n.Stop()

	dir := copyExample(t)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	out, err := command(t, ctx, dir, nil, npmBin, "ci", "--no-audit", "--no-fund")
	require.NoError(t, err, "npm ci (needs the npm registry or a warm cache):\n%s", out)

	env := []string{"ANFED_URL=" + n.ClientURL(), "ANFED_USER=" + user, "ANFED_PASSWORD=" + password, "ANFED_OPERATOR=op-b"}
	out, err = command(t, ctx, dir, env, nodeBin, "--test", "--test-reporter=tap")
	t.Logf("node --test:\n%s", out)
	require.NoError(t, err)
	assert.Regexp(t, regexp.MustCompile(`(?m)^# pass [1-9]`), out)
	assert.Regexp(t, regexp.MustCompile(`(?m)^# fail 0$`), out)
	assert.Regexp(t, regexp.MustCompile(`(?m)^# skipped 0$`), out, "the test ran against the node, not skipped")

	// What the loop did is on the node: one mitigation raised and cleared,
	// signed by the node, answering the congestion.
	nc, err := nats.Connect(n.ClientURL(), nats.UserInfo(user, password))
	require.NoError(t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	st, err := js.Stream(ctx, "ANFED_SIGNALS")
	require.NoError(t, err)
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{"an.sig.op-b.mitigation.>"}})
	require.NoError(t, err)
	var mits []*signal.Event
	for pending := cons.CachedInfo().NumPending; pending > 0; {
		m, err := cons.Next(jetstream.FetchMaxWait(10 * time.Second))
		require.NoError(t, err)
		meta, err := m.Metadata()
		require.NoError(t, err)
		pending = meta.NumPending
		ev, err := signal.DecodeStructured(m.Data())
		require.NoError(t, err)
		mits = append(mits, ev)
	}
	require.Len(t, mits, 2, "one raise and one clear")
	assert.Equal(t, signal.Raised, mits[0].State)
	assert.Equal(t, signal.Cleared, mits[1].State)
	assert.Equal(t, mits[0].Subject, mits[1].Subject)
	assert.True(t, strings.HasSuffix(mits[0].Subject, "/ic-1"), mits[0].Subject)
	assert.Equal(t, "anfed://op-b/closed-loop-node", mits[0].Source)
	assert.NotEmpty(t, mits[0].DSSEMaterial, "signed by the node on intake")
	// The durable consumers of the test were removed by the test itself.
	for name := range st.ConsumerNames(ctx).Name() {
		assert.False(t, strings.HasPrefix(name, "node-test-"), "left behind: %s", name)
	}
}
