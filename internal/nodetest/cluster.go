package nodetest

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/natsconf"
	"github.com/anfed/anfed/internal/natstest"
)

// Cluster is a real three-server NATS cluster on loopback, each server
// configured by its own file that includes `anfed natsconf`'s output and
// adds its name, client listener, JetStream directory and routes (as
// docs/external-nats.md shows).
type Cluster struct {
	t       testing.TB
	Names   []string
	Files   []string
	mu      sync.Mutex
	servers []*server.Server
	opts    []*server.Options
}

// StartCluster writes cfg's seeds and the cluster's configuration with
// natsconf (what `anfed natsconf` writes), starts three servers from it,
// edit (if not nil) applied to each server's parsed options, and points
// cfg's nats.external.urls at them.
func StartCluster(t testing.TB, cfg *config.Config, edit func(i int, o *server.Options)) *Cluster {
	t.Helper()
	dir := NATSConfDir(t, cfg)
	routes := make([]string, 3)
	for i := range routes {
		routes[i] = natstest.FreeAddr(t)
	}
	c := &Cluster{t: t}
	for i := range 3 {
		name := fmt.Sprintf("n%d", i+1)
		var rs []string
		for _, r := range routes {
			rs = append(rs, fmt.Sprintf("%q", "nats-route://"+r))
		}
		conf := fmt.Sprintf("server_name: %s\nlisten: \"127.0.0.1:-1\"\ninclude \"anfed.conf\"\n"+
			"jetstream { store_dir: %q, sync_interval: \"2m\" }\n"+
			"cluster { name: %s, listen: %q, routes: [%s] }\n",
			name, filepath.ToSlash(filepath.Join(dir, name)), "op-a-nats", routes[i], strings.Join(rs, ", "))
		file := filepath.Join(dir, name+".conf")
		require.NoError(t, os.WriteFile(file, []byte(conf), 0o600))
		opts, err := server.ProcessConfigFile(file)
		require.NoError(t, err, "nats-server's own parser on %s", file)
		opts.NoSigs, opts.NoLog = true, true
		if edit != nil {
			edit(i, opts)
		}
		c.Names, c.Files, c.opts = append(c.Names, name), append(c.Files, file), append(c.opts, opts)
		c.servers = append(c.servers, c.run(opts))
	}
	var urls []string
	for i, s := range c.servers {
		require.True(t, s.ReadyForConnections(20*time.Second))
		urls = append(urls, s.ClientURL())
		// A restarted server listens where it did: its clients come back.
		c.opts[i].Port = s.Addr().(*net.TCPAddr).Port
	}
	natstest.WaitFor(t, 30*time.Second, c.formed)
	cfg.NATS.External.URLs = urls
	return c
}

// NATSConfDir writes cfg's seeds (creating those missing) and, in a new
// directory, anfed.conf: what `anfed natsconf` writes for cfg, for a
// server's configuration to include. It returns the directory.
func NATSConfDir(t testing.TB, cfg *config.Config) string {
	t.Helper()
	_, err := natsconf.EnsureSecrets(cfg)
	require.NoError(t, err)
	sec, err := natsconf.LoadSecrets(cfg)
	require.NoError(t, err)
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "anfed.conf"), []byte(natsconf.External(cfg, sec, time.Now())), 0o600))
	return dir
}

func (c *Cluster) run(opts *server.Options) *server.Server {
	srv, err := server.NewServer(opts)
	require.NoError(c.t, err)
	srv.Start()
	c.t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	return srv
}

// formed says what is missing for a cluster of three with a JetStream
// meta leader (nil when nothing is).
func (c *Cluster) formed() error {
	leader := false
	for _, s := range c.Servers() {
		if !s.Running() {
			return fmt.Errorf("%s is not running", s.Name())
		}
		if s.NumRoutes() < 2 {
			return fmt.Errorf("%s has %d routes", s.Name(), s.NumRoutes())
		}
		leader = leader || s.JetStreamIsLeader()
	}
	if !leader {
		return fmt.Errorf("no JetStream meta leader")
	}
	return nil
}

// Servers are the cluster's servers now (a restarted one replaced).
func (c *Cluster) Servers() []*server.Server {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*server.Server(nil), c.servers...)
}

// ByName is the server called name (nil: none).
func (c *Cluster) ByName(name string) *server.Server {
	for i, n := range c.Names {
		if n == name {
			return c.Servers()[i]
		}
	}
	return nil
}

// Restart starts the server called name again, shut down before, on the
// same configuration, listeners and JetStream directory, and waits until
// the cluster has formed again with it.
func (c *Cluster) Restart(name string) *server.Server {
	c.t.Helper()
	for i, n := range c.Names {
		if n != name {
			continue
		}
		old := c.Servers()[i]
		old.Shutdown()
		old.WaitForShutdown()
		srv := c.run(c.opts[i])
		require.True(c.t, srv.ReadyForConnections(20*time.Second), "%s restarted", name)
		c.mu.Lock()
		c.servers[i] = srv
		c.mu.Unlock()
		natstest.WaitFor(c.t, 60*time.Second, c.formed)
		return srv
	}
	c.t.Fatalf("no server %s in the cluster", name)
	return nil
}
