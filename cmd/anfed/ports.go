package main

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"

	"github.com/anfed/anfed/internal/config"
)

// checkPorts tries each address the node will listen on, so that a port
// in use is named at once, with its policy key, instead of surfacing as a
// NATS server that never becomes ready.
func checkPorts(cfg *config.Config) error {
	type addr struct{ key, listen string }
	var addrs []addr
	if cfg.NATS.External == nil {
		addrs = append(addrs, addr{"nats.client.listen", cfg.NATS.Client.Listen})
		if l := cfg.NATS.LeafNodes; l != nil {
			addrs = append(addrs, addr{"nats.leafnodes.listen", l.Listen})
		}
	}
	addrs = append(addrs, addr{"http.listen", cfg.HTTP.Listen})
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
