package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"syscall"

	"github.com/rs/zerolog"

	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/httpapi"
	"github.com/anfed/anfed/internal/node"
)

// startHTTP starts hs for n. A node whose HTTP address is the default and
// taken (another node on this machine, say) runs on without HTTP and says
// so; any other failure is the caller's to report.
func startHTTP(hs *httpapi.Server, n *node.Node, listen string, log zerolog.Logger) (*httpapi.Server, error) {
	err := hs.Start(n)
	switch {
	case err == nil:
		return hs, nil
	case listen == config.DefaultHTTPListen && errors.Is(err, syscall.EADDRINUSE):
		log.Warn().Err(err).Msg("no HTTP server: the default address is taken; set http.listen in the policy file to serve health, metrics and the dashboard")
		return nil, nil
	}
	return nil, err
}

// demoHTTP serves each demo operator's node on consecutive ports from
// base ("127.0.0.1:8440": op-a on 8440, op-b on 8441, op-c on 8442; port
// 0: free ports) and prints their URLs.
type demoHTTP struct {
	base    string
	log     zerolog.Logger
	out     io.Writer
	servers map[string]*httpapi.Server
}

func newDemoHTTP(base string, out io.Writer, log zerolog.Logger) (*demoHTTP, error) {
	d := &demoHTTP{base: base, log: log, out: out, servers: map[string]*httpapi.Server{}}
	if base == "" {
		return d, nil
	}
	if _, _, err := net.SplitHostPort(base); err != nil {
		return nil, fmt.Errorf("--http %q: want host:port, e.g. 127.0.0.1:8440, or \"\" for none", base)
	}
	return d, nil
}

// demoOperators are the demo's operators, in port order.
var demoOperators = []string{"op-a", "op-b", "op-c"}

func (d *demoHTTP) nodeOptions(id string) []node.Option {
	if d.base == "" {
		return nil
	}
	host, port, _ := net.SplitHostPort(d.base)
	p, _ := strconv.Atoi(port)
	addr := net.JoinHostPort(host, "0")
	for i, o := range demoOperators {
		if o == id && p != 0 {
			addr = net.JoinHostPort(host, strconv.Itoa(p+i))
		}
	}
	hs := httpapi.New(httpapi.Options{Listen: addr, Log: d.log})
	d.servers[id] = hs
	return []node.Option{node.WithObserver(hs.Observer())}
}

func (d *demoHTTP) started(nodes map[string]*node.Node) (func(), error) {
	var started []*httpapi.Server
	stop := func() {
		for _, hs := range started {
			hs.Stop()
		}
	}
	for _, id := range demoOperators {
		hs, n := d.servers[id], nodes[id]
		if hs == nil || n == nil {
			continue
		}
		if err := hs.Start(n); err != nil {
			if errors.Is(err, syscall.EADDRINUSE) {
				fmt.Fprintf(d.out, "anfed demo: %s: no dashboard (%v); try --http 127.0.0.1:0\n", id, err)
				continue
			}
			stop()
			return nil, err
		}
		started = append(started, hs)
		fmt.Fprintf(d.out, "anfed demo: %s dashboard %s  metrics %smetrics\n", id, hs.URL(), hs.URL())
	}
	return stop, nil
}
