package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/anfed/anfed/internal/natsconf"
)

// This file is the node beside an existing NATS cluster (nats.external):
// TCP connections as the node's stable users, a check at start that the
// cluster carries what `anfed natsconf` derived, and the leaf links seen
// through the system account, since there is no server of our own to ask.

// WithNATSOptions adds nats.go options to the node's connections to an
// external cluster (nats.external), after the node's own.
func WithNATSOptions(opts ...nats.Option) Option {
	return func(n *Node) { n.natsOpts = append(n.natsOpts, opts...) }
}

// policyFile names the policy file in advice.
func (n *Node) policyFile() string {
	if n.config().File == "" {
		return "POLICY.yaml"
	}
	return n.config().File
}

// external reports whether the node runs against an existing cluster.
func (n *Node) external() bool { return n.config().NATS.External != nil }

// leafConn is one leaf connection of a peer's account, on the server that
// holds it.
type leafConn struct {
	*server.LeafInfo
	server string // the server's id ("" on the embedded server)
}

// clusterLeafs is the last look at the cluster's leaf connections, kept
// fresh by watchLeafs.
type clusterLeafs struct {
	mu     sync.Mutex
	byPeer map[string][]leafConn
}

// dialOptions are the options of a TCP connection to the cluster as the
// node's user of account.
func (n *Node) dialOptions(account string) ([]nats.Option, error) {
	e := n.config().NATS.External
	opts := []nats.Option{
		nats.Nkey(n.sec.Public(account), n.sec[account].Sign),
		nats.MaxReconnects(-1),
		// Another server takes over at once; wait a little only before
		// trying a server again.
		nats.ReconnectWait(250 * time.Millisecond),
		nats.ReconnectJitter(100*time.Millisecond, 100*time.Millisecond),
		nats.Timeout(5 * time.Second),
	}
	if t := e.TLS; t != nil {
		if t.CA != "" {
			opts = append(opts, nats.RootCAs(t.CA))
		}
		if t.Cert != "" {
			opts = append(opts, nats.ClientCert(t.Cert, t.Key))
		}
	}
	return opts, nil
}

// dial connects to the cluster as the node's user of account, saying what
// to fix when the cluster refuses it.
func (n *Node) dial(account string, opts ...nats.Option) (*nats.Conn, error) {
	base, err := n.dialOptions(account)
	if err != nil {
		return nil, err
	}
	opts = append(append(base, n.natsOpts...), opts...)
	nc, err := nats.Connect(strings.Join(n.config().NATS.External.URLs, ","), opts...)
	switch {
	case errors.Is(err, nats.ErrAuthorization), errors.Is(err, nats.ErrNkeysNotSupported):
		return nil, fmt.Errorf("the cluster refused the node's user of account %s (%s): its servers do not carry the configuration `anfed natsconf --config %s` writes from this policy: write it, include it in every server's configuration and reload them",
			account, n.sec.Public(account), n.policyFile())
	case err != nil:
		return nil, fmt.Errorf("connect to the cluster (%s) as the node's user of account %s: %w", strings.Join(n.config().NATS.External.URLs, ", "), account, err)
	}
	return nc, nil
}

// checkCluster refuses a cluster that lacks what the node needs, before
// anything is created in it: each of the node's users must exist, land in
// its own account with the permissions natsconf gives it, and OPS must
// have JetStream.
func (n *Node) checkCluster(ctx context.Context) error {
	if err := natsconf.CheckServerVersion(n.sys.ConnectedServerVersion()); err != nil {
		return fmt.Errorf("the cluster's server %s: %w", n.sys.ConnectedServerName(), err)
	}
	fix := fmt.Sprintf("run `anfed natsconf --config %s`, include its output in every server's configuration and reload the servers", n.policyFile())
	sysPub, sysSub := natsconf.SysPermissions()
	for _, acct := range natsconf.Accounts(n.config()) {
		nc := n.sys
		if acct != natsconf.SysAccount {
			var err error
			if nc, err = n.dial(acct, nats.Name("anfed-node-check"), nats.NoReconnect()); err != nil {
				return err
			}
		}
		info, err := userInfo(ctx, nc)
		if nc != n.sys {
			nc.Close()
		}
		if err != nil {
			return fmt.Errorf("ask the cluster who the node's user of account %s is: %w", acct, err)
		}
		if info.Account != acct {
			return fmt.Errorf("the node's user of account %s (%s) is in account %q on the cluster: %s", acct, n.sec.Public(acct), info.Account, fix)
		}
		var want *server.Permissions
		if acct == natsconf.SysAccount {
			want = &server.Permissions{Publish: &server.SubjectPermission{Allow: sysPub}, Subscribe: &server.SubjectPermission{Allow: sysSub}}
		}
		if !samePermissions(info.Permissions, want) {
			var got strings.Builder
			enc := json.NewEncoder(&got)
			enc.SetEscapeHTML(false)
			_ = enc.Encode(info.Permissions)
			return fmt.Errorf("the node's user of account %s has permissions %s on the cluster, not those anfed derives: %s", acct, strings.TrimSpace(got.String()), fix)
		}
	}
	js, err := jetstream.New(n.storeConn)
	if err != nil {
		return err
	}
	if _, err := js.AccountInfo(ctx); err != nil {
		switch {
		case errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount):
			return fmt.Errorf("JetStream is not enabled for account %s on the cluster (jetstream: enabled in the account): %s", natsconf.OpsAccount, fix)
		case errors.Is(err, jetstream.ErrJetStreamNotEnabled):
			return fmt.Errorf("JetStream is off on the cluster: enable it in every server's own configuration, e.g. jetstream { store_dir: \"/data/jetstream\" }, and restart them (see docs/external-nats.md)")
		default:
			return fmt.Errorf("JetStream in account %s: %w", natsconf.OpsAccount, err)
		}
	}
	return nil
}

func userInfo(ctx context.Context, nc *nats.Conn) (*server.UserInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	m, err := nc.RequestWithContext(ctx, "$SYS.REQ.USER.INFO", nil)
	if err != nil {
		return nil, err
	}
	var resp struct {
		Data  server.UserInfo  `json:"data"`
		Error *server.ApiError `json:"error"`
	}
	if err := json.Unmarshal(m.Data, &resp); err != nil {
		return nil, err
	}
	if resp.Error != nil {
		return nil, errors.New(resp.Error.Description)
	}
	return &resp.Data, nil
}

func samePermissions(got, want *server.Permissions) bool {
	norm := func(p *server.Permissions) (pa, pd, sa, sd []string) {
		if p == nil {
			return
		}
		if p.Publish != nil {
			pa, pd = p.Publish.Allow, p.Publish.Deny
		}
		if p.Subscribe != nil {
			sa, sd = p.Subscribe.Allow, p.Subscribe.Deny
		}
		return
	}
	gpa, gpd, gsa, gsd := norm(got)
	wpa, wpd, wsa, wsd := norm(want)
	eq := func(a, b []string) bool {
		a, b = slices.Clone(a), slices.Clone(b)
		slices.Sort(a)
		slices.Sort(b)
		return slices.Equal(a, b)
	}
	return eq(gpa, wpa) && eq(gpd, wpd) && eq(gsa, wsa) && eq(gsd, wsd) && (got == nil || got.Response == nil)
}

// leafsInterval is how often the node asks the cluster for its leaf
// connections.
const leafsInterval = 250 * time.Millisecond

// watchLeafs keeps n.leafs fresh until ctx is done.
func (n *Node) watchLeafs(ctx context.Context) {
	t := time.NewTicker(leafsInterval)
	defer t.Stop()
	for {
		if by, err := n.askLeafs(ctx); err == nil {
			n.leafs.mu.Lock()
			n.leafs.byPeer = by
			n.leafs.mu.Unlock()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// askLeafs asks every server of the cluster for its leaf connections in
// peers' accounts, and gathers the answers that come within a short wait.
func (n *Node) askLeafs(ctx context.Context) (map[string][]leafConn, error) {
	inbox := n.sys.NewRespInbox()
	answers := make(chan *nats.Msg, 64)
	sub, err := n.sys.ChanSubscribe(inbox, answers)
	if err != nil {
		return nil, err
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := n.sys.PublishRequest("$SYS.REQ.SERVER.PING.LEAFZ", inbox, []byte("{}")); err != nil {
		return nil, err
	}
	// Every server answers; one that is gone does not, so the wait ends
	// when as many answered as the client knows servers, or at a bound.
	want := len(n.sys.Servers())
	deadline := time.NewTimer(time.Second)
	defer deadline.Stop()
	out := map[string][]leafConn{}
	for got := 0; got < want; {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-deadline.C:
			return out, nil
		case m := <-answers:
			got++
			var resp struct {
				Server server.ServerInfo `json:"server"`
				Data   server.Leafz      `json:"data"`
			}
			if json.Unmarshal(m.Data, &resp) != nil {
				continue
			}
			for _, li := range resp.Data.Leafs {
				if peer, ok := strings.CutPrefix(li.Account, natsconf.PeerAccount("")); ok {
					out[peer] = append(out[peer], leafConn{LeafInfo: li, server: resp.Server.ID})
				}
			}
		}
	}
	return out, nil
}

// clusterLinkUp reports whether, at the last look, a server of the
// cluster held a leaf connection of peer's account.
func (n *Node) clusterLinkUp(peer string) bool {
	n.leafs.mu.Lock()
	defer n.leafs.mu.Unlock()
	return len(n.leafs.byPeer[peer]) > 0
}

// kick disconnects a leaf connection, on the server that holds it.
func (n *Node) kick(lc leafConn) {
	if !n.external() {
		if n.srv != nil {
			_ = n.srv.DisconnectClientByID(lc.ID)
		}
		return
	}
	req, _ := json.Marshal(server.KickClientReq{CID: lc.ID})
	_ = n.sys.Publish("$SYS.REQ.SERVER."+lc.server+".KICK", req)
}
