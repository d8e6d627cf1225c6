package node

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/rs/zerolog"

	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/natsconf"
)

// natsLogger sends the embedded server's log lines to zerolog, naming the
// peer a line is about where the server only names a connection (lid:N)
// or a user, so that an operator sees which peer was refused. While the
// node stops, the server's errors about connections closing under it are
// expected and logged at debug level.
type natsLogger struct {
	log      zerolog.Logger
	stopping *atomic.Bool
	peers    *leafPeers
	// storeFault hears every error and warning: some say the store
	// cannot write.
	storeFault func(msg string)
}

func (l natsLogger) Noticef(format string, v ...any) { l.emit(l.log.Info(), format, v) }
func (l natsLogger) Warnf(format string, v ...any) {
	l.tellStore(format, v)
	l.emit(l.log.Warn(), format, v)
}
func (l natsLogger) Fatalf(format string, v ...any) { l.emit(l.log.Error(), format, v) }
func (l natsLogger) Debugf(format string, v ...any) { l.emit(l.log.Debug(), format, v) }
func (l natsLogger) Tracef(format string, v ...any) { l.emit(l.log.Trace(), format, v) }

// tellStore hands a warning or error to storeFault.
func (l natsLogger) tellStore(format string, v []any) {
	if l.storeFault != nil && !l.stopping.Load() {
		l.storeFault(fmt.Sprintf(format, v...))
	}
}

func (l natsLogger) Errorf(format string, v ...any) {
	l.tellStore(format, v)
	if l.stopping.Load() {
		l.emit(l.log.Debug(), format, v)
		return
	}
	l.emit(l.log.Error(), format, v)
}

func (l natsLogger) emit(e *zerolog.Event, format string, v []any) {
	msg := fmt.Sprintf(format, v...)
	if l.peers == nil {
		e.Msg(msg)
		return
	}
	if strings.Contains(msg, "Leafnode connection created") {
		l.peers.learn(msg)
	}
	if strings.Contains(msg, "found in connect proto, but user required from cert") {
		// verify_and_map names the leaf user from the certificate; an
		// anfed dialler still sends the user it was issued. Expected.
		l.log.Debug().Msg(msg)
		return
	}
	reason := limitReason(msg)
	if reason == LimitConnections {
		// The refused connection never joined its account: it is known
		// only among the closed ones, once the server has closed it,
		// after this line. Log it then, with the peer.
		l.peers.later(l.stopping, func(peer string) {
			l.peers.count(peer, reason)
			ev := l.log.Warn()
			if peer != "" {
				ev = ev.Str("peer", peer)
			}
			ev.Str("reason", reason).Msg(msg + ": a second connection of the peer, refused; the established one is kept")
		}, msg)
		return
	}
	peer := l.peers.about(msg)
	if peer != "" {
		e = e.Str("peer", peer)
	}
	if reason != "" {
		l.peers.count(peer, reason)
		e = e.Str("reason", reason)
	}
	e.Msg(msg)
}

var (
	lidRE  = regexp.MustCompile(`lid:(\d+)`)
	userRE = regexp.MustCompile(`[Uu]ser "([^"]+)"`)
)

// leafPeers maps leaf connections and leaf users to peer ids.
type leafPeers struct {
	srv      func() *server.Server
	mu       sync.Mutex
	users    map[string]string // accept.user -> peer id
	lids     map[uint64]string
	refusals map[[2]string]uint64 // (peer, reason) -> count
}

// setUsers names the peers of cfg's leaf users (at start, and when a
// reload changes them).
func (p *leafPeers) setUsers(cfg *config.Config) {
	users := map[string]string{}
	for _, pr := range cfg.Peers {
		if pr.Accept != nil {
			users[pr.Accept.User] = pr.ID
			users[natsconf.LeafUser(cfg, &pr)] = pr.ID
		}
	}
	p.mu.Lock()
	p.users = users
	p.mu.Unlock()
}

// count counts a refusal of peer's ("" when unknown) for reason.
func (p *leafPeers) count(peer, reason string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.refusals == nil {
		p.refusals = map[[2]string]uint64{}
	}
	p.refusals[[2]string{peer, reason}]++
}

// counts returns the refusals so far, by peer and reason.
func (p *leafPeers) counts() map[string]map[string]uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string]map[string]uint64{}
	for k, n := range p.refusals {
		if out[k[0]] == nil {
			out[k[0]] = map[string]uint64{}
		}
		out[k[0]][k[1]] = n
	}
	return out
}

// later calls f, in the background, with the peer whose connection (lid
// in msg) the server has closed, once it is among the closed connections
// (or "" after a second).
func (p *leafPeers) later(stopping *atomic.Bool, f func(peer string), msg string) {
	m := lidRE.FindStringSubmatch(msg)
	if m == nil {
		f("")
		return
	}
	lid, _ := strconv.ParseUint(m[1], 10, 64)
	go func() {
		peer := ""
		for range 50 {
			if peer = p.closedPeer(lid); peer != "" || stopping.Load() {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		f(peer)
	}()
}

// closedPeer is the peer of the closed connection cid, if the server
// still has it.
func (p *leafPeers) closedPeer(cid uint64) string {
	s := p.srv()
	if s == nil {
		return ""
	}
	cz, err := s.Connz(&server.ConnzOptions{CID: cid, State: server.ConnClosed, Username: true})
	if err != nil || len(cz.Conns) == 0 {
		return ""
	}
	peer, _ := strings.CutPrefix(cz.Conns[0].Account, natsconf.PeerAccount(""))
	if peer == cz.Conns[0].Account {
		return ""
	}
	return peer
}

// learn records, in the background, which peer a new leaf connection
// belongs to: the server may hold locks while it logs.
func (p *leafPeers) learn(msg string) {
	m := lidRE.FindStringSubmatch(msg)
	if m == nil {
		return
	}
	lid, _ := strconv.ParseUint(m[1], 10, 64)
	go func() {
		for range 20 {
			if p.lookup(lid) != "" {
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
}

// lookup finds the peer of leaf connection lid in the server's leaf
// connections, and remembers it.
func (p *leafPeers) lookup(lid uint64) string {
	s := p.srv()
	if s == nil {
		return ""
	}
	lz, err := s.Leafz(nil)
	if err != nil {
		return ""
	}
	for _, li := range lz.Leafs {
		if li.ID == lid {
			peer, ok := strings.CutPrefix(li.Account, natsconf.PeerAccount(""))
			if !ok {
				return ""
			}
			p.mu.Lock()
			p.lids[lid] = peer
			p.mu.Unlock()
			return peer
		}
	}
	return ""
}

// about names the peer a server log line is about, if it can tell.
func (p *leafPeers) about(msg string) string {
	if m := userRE.FindStringSubmatch(msg); m != nil {
		p.mu.Lock()
		peer, ok := p.users[m[1]]
		p.mu.Unlock()
		if ok {
			return peer
		}
	}
	if m := lidRE.FindStringSubmatch(msg); m != nil {
		lid, _ := strconv.ParseUint(m[1], 10, 64)
		p.mu.Lock()
		peer := p.lids[lid]
		p.mu.Unlock()
		if peer != "" || !strings.Contains(msg, "Violation") {
			return peer
		}
		// A violation right after the connection came up, before the
		// background lookup: look now. The server may hold locks while it
		// logs, so the lookup runs aside and is waited for briefly; the
		// connection is still registered until after this line.
		ch := make(chan string, 1)
		go func() { ch <- p.lookup(lid) }()
		select {
		case peer = <-ch:
		case <-time.After(100 * time.Millisecond):
		}
		return peer
	}
	return ""
}
