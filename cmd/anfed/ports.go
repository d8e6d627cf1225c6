package main

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"

	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/store"
)

// checkPorts tries each address the node will listen on, so that a port
// in use is named at once, with its policy key, instead of surfacing as a
// NATS server that never becomes ready. A store held by another node is
// said first: a second serve on the same policy finds both taken, and the
// store is what matters. The default HTTP address is left to startHTTP,
// which goes on without HTTP when it is taken.
func checkPorts(cfg *config.Config) error {
	if cfg.NATS.External == nil && cfg.Storage.Dir != "" {
		l, err := store.LockDir(cfg.Storage.Dir)
		if errors.Is(err, store.ErrLocked) {
			return err
		}
		l.Release() // the node takes it again when it starts
	}
	type addr struct{ key, listen string }
	var addrs []addr
	if cfg.NATS.External == nil {
		addrs = append(addrs, addr{"nats.client.listen", cfg.NATS.Client.Listen})
		if l := cfg.NATS.LeafNodes; l != nil {
			addrs = append(addrs, addr{"nats.leafnodes.listen", l.Listen})
		}
	}
	if cfg.HTTP.Listen != config.DefaultHTTPListen {
		addrs = append(addrs, addr{"http.listen", cfg.HTTP.Listen})
	}
	var problems []string
	for _, a := range addrs {
		if a.listen == "" {
			continue
		}
		if _, port, err := net.SplitHostPort(a.listen); err != nil || port == "0" {
			continue
		}
		l, err := net.Listen("tcp", a.listen)
		if err == nil {
			l.Close()
			continue
		}
		_, port, _ := net.SplitHostPort(a.listen)
		if errors.Is(err, syscall.EADDRINUSE) {
			problems = append(problems, fmt.Sprintf("%s: %s: the port is in use (another anfed or nats-server? `ss -ltnp 'sport = :%s'` names the process); stop it or choose another port in %s",
				a.key, a.listen, port, cfg.File))
			continue
		}
		problems = append(problems, fmt.Sprintf("%s: %s: %v", a.key, a.listen, err))
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "\n"))
	}
	return nil
}
