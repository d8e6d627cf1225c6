// Package natstest holds test helpers that run real NATS servers: polling
// waits, a rogue leaf node that dials a real anfed node with a peer's real
// credentials (over TLS or not), so tests can speak raw NATS on a real
// link or check that a link is refused, and a throwaway CA for TLS.
package natstest

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"
)

// WaitFor polls f until it returns nil or d passes, then fails the test
// with f's last error.
func WaitFor(t testing.TB, d time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	var err error
	for {
		if err = f(); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met after %v: %v", d, err)
		}
		time.Sleep(15 * time.Millisecond)
	}
}

// RogueLeaf is a bare NATS server that dials leafURL as user/password, the
// way a peer's node would, and a client connected to it. Whatever the
// client publishes crosses the real link; whatever the link lets through,
// the client can subscribe to.
type RogueLeaf struct {
	Server *server.Server
	Conn   *nats.Conn

	log *noticeLog
}

// StartRogueLeaf starts a rogue leaf and waits until its link is up.
func StartRogueLeaf(t testing.TB, leafURL, user, password string, opts ...nats.Option) *RogueLeaf {
	t.Helper()
	return StartRogueLeafTLS(t, leafURL, user, password, nil, opts...)
}

// StartRogueLeafTLS is StartRogueLeaf over TLS: tlsCfg (nil for none) is
// the rogue's client side of the handshake, e.g. CA.ClientTLS.
func StartRogueLeafTLS(t testing.TB, leafURL, user, password string, tlsCfg *tls.Config, opts ...nats.Option) *RogueLeaf {
	t.Helper()
	r := DialRogueLeaf(t, leafURL, user, password, tlsCfg, opts...)
	r.WaitUp(t, 10*time.Second)
	return r
}

// DialRogueLeaf starts a rogue leaf that keeps dialling leafURL (over TLS
// when tlsCfg is not nil) and returns at once, without waiting for the
// link: attacks that must fail use it with RequireStaysDown.
func DialRogueLeaf(t testing.TB, leafURL, user, password string, tlsCfg *tls.Config, opts ...nats.Option) *RogueLeaf {
	t.Helper()
	u, err := url.Parse(leafURL)
	require.NoError(t, err)
	u.User = url.UserPassword(user, password)
	remote := &server.RemoteLeafOpts{URLs: []*url.URL{u}}
	if tlsCfg != nil {
		remote.TLS = true
		remote.TLSConfig = tlsCfg.Clone()
		remote.TLSTimeout = 2
	}
	sopts := &server.Options{
		ServerName: "rogue-" + user,
		Host:       "127.0.0.1",
		Port:       -1,
		NoSigs:     true,
		NoLog:      true,
		LeafNode: server.LeafNodeOpts{
			ReconnectInterval: 100 * time.Millisecond,
			Remotes:           []*server.RemoteLeafOpts{remote},
		},
	}
	s, err := server.NewServer(sopts)
	require.NoError(t, err)
	log := &noticeLog{}
	s.SetLoggerV2(log, false, false, false)
	s.Start()
	t.Cleanup(s.Shutdown)
	require.True(t, s.ReadyForConnections(10*time.Second))
	nc, err := nats.Connect("", append([]nats.Option{nats.InProcessServer(s)}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	return &RogueLeaf{Server: s, Conn: nc, log: log}
}

// WaitUp waits up to d for the rogue's link to come up.
func (r *RogueLeaf) WaitUp(t testing.TB, d time.Duration) {
	t.Helper()
	WaitFor(t, d, func() error {
		if r.Server.NumLeafNodes() != 1 {
			return fmt.Errorf("rogue leaf %s not connected; its log: %v", r.Server.Name(), r.Log())
		}
		return nil
	})
}

// RequireStaysDown fails the test if, within d, a leaf link comes up on
// the rogue or on target (the server it dials). It then requires that the
// rogue saw at least one of its connections closed, so the link is known
// to have been refused rather than never tried.
func (r *RogueLeaf) RequireStaysDown(t testing.TB, target *server.Server, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if n := target.NumLeafNodes(); n != 0 {
			t.Fatalf("the link came up: %s has %d leaf connection(s)", target.Name(), n)
		}
		if r.Server.NumLeafNodes() != 0 {
			t.Fatalf("the link came up on the rogue leaf %s", r.Server.Name())
		}
		time.Sleep(15 * time.Millisecond)
	}
	for _, l := range r.Log() {
		if strings.Contains(l, "connection closed") {
			return
		}
	}
	t.Fatalf("the rogue leaf never had a connection refused; its log: %v", r.Log())
}

// Log returns what the rogue's server logged at notice level and above:
// its leaf connections opening and closing, with the reason (a failed
// TLS handshake, an authorization violation).
func (r *RogueLeaf) Log() []string { return r.log.lines() }

// noticeLog keeps a server's notices, warnings and errors.
type noticeLog struct {
	mu  sync.Mutex
	buf []string
}

func (l *noticeLog) add(format string, v ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.buf) < 1000 {
		l.buf = append(l.buf, fmt.Sprintf(format, v...))
	}
}

func (l *noticeLog) lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.buf...)
}

func (l *noticeLog) Noticef(format string, v ...any) { l.add(format, v...) }
func (l *noticeLog) Errorf(format string, v ...any)  { l.add(format, v...) }
func (l *noticeLog) Warnf(format string, v ...any)   { l.add(format, v...) }
func (l *noticeLog) Fatalf(format string, v ...any)  { l.add(format, v...) }
func (l *noticeLog) Debugf(string, ...any)           {}
func (l *noticeLog) Tracef(string, ...any)           {}

// PlainLeafAnswer is what a leaf listener answered a client that spoke the
// leaf protocol in clear text.
type PlainLeafAnswer struct {
	Info   string // the INFO line the listener sent first
	Rest   []byte // everything after it, until it closed or the wait ended
	Closed bool   // the listener closed the connection
}

// PlainLeafConnect dials the leaf listener at addr over plain TCP, reads
// its INFO, and sends a leaf CONNECT as user/password and a PING in clear
// text, ignoring any tls_required: the way past TLS that a careless or
// hostile peer would try. It waits up to d for the listener to close.
func PlainLeafConnect(t testing.TB, addr, user, password string, d time.Duration) PlainLeafAnswer {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, d)
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.SetDeadline(time.Now().Add(d)))
	br := bufio.NewReader(c)
	info, err := br.ReadString('\n')
	require.NoError(t, err, "no INFO from %s", addr)
	connect, err := json.Marshal(map[string]any{"user": user, "pass": password, "tls_required": false, "name": "plain-" + user})
	require.NoError(t, err)
	_, err = fmt.Fprintf(c, "CONNECT %s\r\nPING\r\n", connect)
	require.NoError(t, err)
	rest, err := io.ReadAll(br)
	var ne net.Error
	timedOut := errors.As(err, &ne) && ne.Timeout()
	return PlainLeafAnswer{Info: strings.TrimSpace(info), Rest: rest, Closed: !timedOut}
}

// FreeAddr returns a loopback address with a port that was free a moment
// ago, for topologies where every node must know the others' addresses
// before any starts.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().String()
}

// FreeRestartAddr is FreeAddr for a listener that a test closes and binds
// again (a process restarted on its policy's ports): a port below the
// kernel's ephemeral range, which other tests running beside this one
// (go test runs packages in parallel) never get from a listen on port 0
// while the listener is down. FreeAddr's ports come from that range: one
// was taken by another package's server while the docs test restarted a
// node, and the node's peer dialled the stranger ("attempted to connect
// to wrong port").
func FreeRestartAddr(t testing.TB) string {
	t.Helper()
	low := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil {
				low = n
			}
		}
	}
	const from = 10000
	if low <= from+1000 {
		return FreeAddr(t)
	}
	for range 100 {
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(from+rand.IntN(low-from)))
		if l, err := net.Listen("tcp", addr); err == nil {
			l.Close()
			return addr
		}
	}
	return FreeAddr(t)
}
