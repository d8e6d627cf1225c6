// Package servetest starts, for a test, what `anfed serve` runs: a node,
// its HTTP server, and a service mounted on that server (the bridges, the
// intents), in serve's order, and stops them in serve's order when the test
// ends. The tests of httpapi, bridge and intent use it instead of keeping
// copies. (It is not in nodetest: httpapi's own tests import nodetest.)
package servetest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/bridge"
	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/httpapi"
	"github.com/anfed/anfed/internal/node"
	"github.com/anfed/anfed/internal/nodetest"
)

// Service runs beside the node on its HTTP server: *bridge.Bridges,
// *intent.Service.
type Service interface {
	Mount(bridge.Mux)
	Start()
	Stop()
}

// Options shape a Site; the zero value is a node and its HTTP server.
type Options struct {
	// Node are options for the node, after its logger, its operator's
	// key and the HTTP server's observer.
	Node []node.Option
	// NodeLog is the node's logger; nil: errors only, to the test's log.
	NodeLog *zerolog.Logger
	// TokenFile is the HTTP server's token file; "": cfg.HTTP.TokenFile.
	TokenFile string
	// Tick is the HTTP server's (httpapi.Options.Tick); 0: its default.
	Tick time.Duration
	// Service makes the service once the node has started, with the
	// node, its HTTP server and a logger (warnings, to the test's log);
	// Start mounts it, starts the HTTP server, then starts it. nil: none.
	Service func(n *node.Node, hs *httpapi.Server, log zerolog.Logger) (Service, error)
}

// Site is a started node, its HTTP server and its service.
type Site struct {
	Node *node.Node
	HTTP *httpapi.Server
	URL  string // the HTTP server's base: http://127.0.0.1:<port>
	// Service is what Options.Service made; nil: none.
	Service Service
	once    sync.Once
}

// Start starts cfg's node with its operator's key from keys, its HTTP
// server on cfg.HTTP.Listen (a free loopback port when that is empty)
// and o.Service, as `anfed serve` does; Stop runs when the test ends.
func Start(t testing.TB, keys *nodetest.Keys, cfg *config.Config, o Options) *Site {
	t.Helper()
	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
	nlog := log.Level(zerolog.ErrorLevel)
	if o.NodeLog != nil {
		nlog = *o.NodeLog
	}
	listen, token := cfg.HTTP.Listen, cfg.HTTP.TokenFile
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	if o.TokenFile != "" {
		token = o.TokenFile
	}
	hs := httpapi.New(httpapi.Options{Listen: listen, TokenFile: token, Tick: o.Tick, Log: log})
	opts := append([]node.Option{node.WithLogger(nlog), node.WithSigningKey(keys.Operator(t, cfg.Operator.ID)), node.WithObserver(hs.Observer())}, o.Node...)
	n := node.New(cfg, opts...)
	require.NoError(t, n.Start(context.Background()))
	s := &Site{Node: n, HTTP: hs}
	if o.Service != nil {
		svc, err := o.Service(n, hs, log)
		if err != nil {
			n.Stop()
			require.NoError(t, err)
		}
		svc.Mount(hs)
		s.Service = svc
	}
	if err := hs.Start(n); err != nil {
		if s.Service != nil {
			s.Service.Stop()
		}
		n.Stop()
		require.NoError(t, err)
	}
	if s.Service != nil {
		s.Service.Start()
	}
	s.URL = "http://" + hs.Addr()
	t.Cleanup(s.Stop)
	return s
}

// Stop stops the site as `anfed serve` does: HTTP, the service, the node.
// It may be called more than once.
func (s *Site) Stop() {
	s.once.Do(func() {
		s.HTTP.Stop()
		if s.Service != nil {
			s.Service.Stop()
		}
		s.Node.Stop()
	})
}
