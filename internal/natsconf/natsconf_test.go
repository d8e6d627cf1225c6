package natsconf_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"

	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/natsconf"
	"github.com/anfed/anfed/internal/natstest"
	"github.com/anfed/anfed/internal/subject"
)

// Passwords and names with every character the NATS config format or a URL
// treats specially.
const (
	nastyPass = `pa"ss\wo$rd #1 ${HOME}`
	nastyUser = `us"er\ $x #y`
)

// preHashed is bcrypt("already-hashed-pass"), as an operator may write it.
var preHashed = func() string {
	h, err := bcrypt.GenerateFromPassword([]byte("already-hashed-pass"), bcrypt.MinCost)
	if err != nil {
		panic(err)
	}
	return string(h)
}()

func baseConfig(t *testing.T) *config.Config {
	return &config.Config{
		Operator: config.Operator{ID: "op-a"},
		Storage: config.Storage{
			Dir:             t.TempDir(),
			MaxAge:          config.Duration(time.Hour),
			MaxBytes:        config.ByteSize(64 << 20),
			DuplicateWindow: config.Duration(2 * time.Minute),
		},
	}
}

func onePeer(t *testing.T) *config.Config {
	c := baseConfig(t)
	c.NATS.Client = config.Listener{Listen: "127.0.0.1:0"}
	c.NATS.LeafNodes = &config.Listener{Listen: "127.0.0.1:0"}
	c.NATS.Users = []config.User{{Name: "loop", Password: nastyPass}}
	c.Peers = []config.Peer{{
		ID:     "op-b",
		Accept: &config.Accept{User: "op-b", Password: "secret-b-123"},
		Export: config.ExportPolicy{Classes: []string{"*"}, Services: []string{"*"}},
		Import: config.ImportPolicy{Classes: []string{"mitigation"}},
	}}
	return c
}

func threePeers(t *testing.T) *config.Config {
	c := baseConfig(t)
	c.NATS.Client = config.Listener{Listen: "127.0.0.1:4333"}
	c.NATS.LeafNodes = &config.Listener{Listen: "0.0.0.0:0"}
	c.NATS.Users = []config.User{
		{Name: "loop", Password: "loop-pass-123"},
		{Name: nastyUser, Password: nastyPass},
		{Name: "hashed", Password: preHashed},
		{Name: "ctl\tuser\x01é", Password: "ctl-pass-123"},
	}
	c.Peers = []config.Peer{
		{
			ID:     "op-b",
			Accept: &config.Accept{User: "leaf-op-b", Password: nastyPass},
			Import: config.ImportPolicy{Classes: []string{"*"}},
		},
		{
			ID:     "op-c",
			Dial:   &config.Dial{URL: "nats-leaf://peer-c.example:7422", User: nastyUser, Password: nastyPass},
			Import: config.ImportPolicy{Classes: []string{"*"}, Transit: true},
		},
		{
			ID:     "op-d",
			Accept: &config.Accept{User: "leaf-op-d", Password: preHashed},
			Import: config.ImportPolicy{Classes: []string{"*"}, Transit: true},
		},
	}
	return c
}

func dialOnly(t *testing.T) *config.Config {
	c := baseConfig(t)
	c.Peers = []config.Peer{{
		ID:   "op-e",
		Dial: &config.Dial{URL: "tls://127.0.0.1:7422", User: "op-a", Password: "plain-pass-123"},
	}}
	return c
}

// parse generates cfg's NATS configuration and runs it through
// nats-server's own parser.
func parse(t *testing.T, cfg *config.Config) (*server.Options, natsconf.Secrets) {
	t.Helper()
	sec, err := natsconf.NewSecrets(cfg)
	require.NoError(t, err)
	out := natsconf.Generate(cfg, sec)
	opts := &server.Options{}
	require.NoError(t, opts.ProcessConfigString(out), "generated config:\n%s", out)
	return opts, sec
}

func TestGenerateIsAcceptedByNATS(t *testing.T) {
	tests := []struct {
		name string
		cfg  func(*testing.T) *config.Config
	}{
		{"no peers, in-process only", baseConfig},
		{"one accepted peer", onePeer},
		{"three peers, accept and dial", threePeers},
		{"one dialled peer, no leaf listener", dialOnly},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg(t)
			opts, sec := parse(t, cfg)

			assert.Equal(t, "anfed-"+cfg.Operator.ID, opts.ServerName)
			assert.Equal(t, natsconf.SysAccount, opts.SystemAccount)
			assert.True(t, opts.JetStream)
			assert.Equal(t, cfg.Storage.Dir, opts.StoreDir)

			wantAccts := []string{natsconf.SysAccount, natsconf.OpsAccount}
			for _, p := range cfg.Peers {
				wantAccts = append(wantAccts, natsconf.PeerAccount(p.ID))
			}
			var accts []string
			for _, a := range opts.Accounts {
				accts = append(accts, a.Name)
			}
			assert.ElementsMatch(t, wantAccts, accts)

			// One internal NKey user per account, in-process only.
			require.Len(t, opts.Nkeys, len(wantAccts))
			for _, acct := range wantAccts {
				nk := findNkey(opts, sec.Public(acct))
				require.NotNil(t, nk, "no internal user for %s", acct)
				require.NotNil(t, nk.Account)
				assert.Equal(t, acct, nk.Account.Name)
				assert.Equal(t, connTypes("IN_PROCESS"), nk.AllowedConnectionTypes, acct)
			}

			// Local users: operations account, cannot write what only the node writes.
			for _, u := range cfg.NATS.Users {
				ou := findUser(opts, u.Name)
				require.NotNil(t, ou, "no user %q", u.Name)
				require.NotNil(t, ou.Account)
				assert.Equal(t, natsconf.OpsAccount, ou.Account.Name)
				assert.Equal(t, connTypes("STANDARD", "WEBSOCKET", "IN_PROCESS"), ou.AllowedConnectionTypes)
				require.NotNil(t, ou.Permissions)
				require.NotNil(t, ou.Permissions.Publish)
				want := []string{subject.Signals, subject.Telemetry, subject.Store, "an.dlq.local.>", "$JS.API.STREAM.DELETE.ANFED_SIGNALS", "$JS.API.STREAM.PURGE.ANFED_SIGNALS",
					"$KV.ANFED_COORD.>", "$JS.API.STREAM.PURGE.KV_ANFED_COORD",
					"$KV.ANFED_LEASES.>", "$JS.API.STREAM.DELETE.KV_ANFED_LEASES",
					subject.Audit, "$JS.API.STREAM.MSG.DELETE.ANFED_AUDIT", "$JS.API.STREAM.PURGE.ANFED_AUDIT"}
				for _, p := range cfg.Peers {
					want = append(want, "an.dlq."+p.ID+".>")
				}
				assert.Subset(t, ou.Permissions.Publish.Deny, want)
				assert.NotContains(t, ou.Permissions.Publish.Deny, "an.dlq.>", "closed loops write their own dead letters")
				checkPassword(t, u.Password, ou.Password)
			}

			// Accepted peers: a leaf user bound to the peer's account.
			for i := range cfg.Peers {
				p := &cfg.Peers[i]
				if p.Accept == nil {
					continue
				}
				ou := findUser(opts, p.Accept.User)
				require.NotNil(t, ou, "no leaf user for %s", p.ID)
				require.NotNil(t, ou.Account)
				assert.Equal(t, natsconf.PeerAccount(p.ID), ou.Account.Name)
				assert.Equal(t, connTypes("LEAFNODE"), ou.AllowedConnectionTypes)
				pub, sub := natsconf.LeafPermissions(cfg.Operator.ID, p)
				require.NotNil(t, ou.Permissions)
				require.NotNil(t, ou.Permissions.Publish)
				require.NotNil(t, ou.Permissions.Subscribe)
				assert.Equal(t, pub, ou.Permissions.Publish.Allow)
				assert.Empty(t, ou.Permissions.Publish.Deny)
				assert.Equal(t, sub, ou.Permissions.Subscribe.Allow)
				assert.Empty(t, ou.Permissions.Subscribe.Deny)
				checkPassword(t, p.Accept.Password, ou.Password)
			}
			assert.Len(t, opts.Users, len(cfg.NATS.Users)+countAccept(cfg), "no other users")

			// Dialled peers: a remote bound to the peer's account, carrying
			// the credentials the peer issued to us.
			var dials int
			for _, p := range cfg.Peers {
				if p.Dial == nil {
					continue
				}
				dials++
				r := findRemote(opts, natsconf.PeerAccount(p.ID))
				require.NotNil(t, r, "no remote for %s", p.ID)
				require.Len(t, r.URLs, 1)
				u := r.URLs[0]
				require.NotNil(t, u.User)
				assert.Equal(t, p.Dial.User, u.User.Username())
				pw, ok := u.User.Password()
				assert.True(t, ok)
				assert.Equal(t, p.Dial.Password, pw)
				assert.Equal(t, strings.SplitN(p.Dial.URL, "://", 2)[1], u.Host)
			}
			assert.Len(t, opts.LeafNode.Remotes, dials)
		})
	}
}

func TestGenerateListeners(t *testing.T) {
	tests := []struct {
		name               string
		client, leaf       string
		wantHost           string
		wantPort           int
		wantLeafHost       string
		wantLeafPort       int
		wantLeafListenOpts bool
	}{
		{name: "no client listener", wantHost: "127.0.0.1", wantPort: -1},
		{name: "port 0 is random", client: "127.0.0.1:0", leaf: "127.0.0.1:0", wantHost: "127.0.0.1", wantPort: -1, wantLeafHost: "127.0.0.1", wantLeafPort: -1, wantLeafListenOpts: true},
		{name: "fixed ports", client: "0.0.0.0:4222", leaf: "10.0.0.1:7422", wantHost: "0.0.0.0", wantPort: 4222, wantLeafHost: "10.0.0.1", wantLeafPort: 7422, wantLeafListenOpts: true},
		{name: "IPv6", client: "[::1]:0", leaf: "[::1]:7422", wantHost: "::1", wantPort: -1, wantLeafHost: "::1", wantLeafPort: 7422, wantLeafListenOpts: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := baseConfig(t)
			cfg.NATS.Client.Listen = tt.client
			if tt.leaf != "" {
				cfg.NATS.LeafNodes = &config.Listener{Listen: tt.leaf}
			}
			opts, _ := parse(t, cfg)
			assert.Equal(t, tt.wantHost, opts.Host)
			assert.Equal(t, tt.wantPort, opts.Port)
			if tt.wantLeafListenOpts {
				assert.Equal(t, tt.wantLeafHost, opts.LeafNode.Host)
				assert.Equal(t, tt.wantLeafPort, opts.LeafNode.Port)
			} else {
				assert.Zero(t, opts.LeafNode.Port, "no leaf listener wanted")
			}
		})
	}
}

// The derived configuration must not hold a local or leaf password in clear
// (package doc of hashPassword), whatever the password looks like.
func TestGenerateNeverKeepsPasswordInClear(t *testing.T) {
	for name, pw := range map[string]string{
		"73 bytes":                  strings.Repeat("p", 73),
		"base64 of 64 random bytes": strings.Repeat("Zm9vYmFy", 11),
		"starts with $2":            "$2-not-a-hash-pass",
	} {
		t.Run(name, func(t *testing.T) {
			cfg := onePeer(t)
			cfg.NATS.Users[0].Password = pw
			cfg.Peers[0].Accept.Password = pw
			sec, err := natsconf.NewSecrets(cfg)
			require.NoError(t, err)
			out := natsconf.Generate(cfg, sec)
			assert.NotContains(t, out, pw)
		})
	}
}

func TestLeafPermissions(t *testing.T) {
	tests := []struct {
		name     string
		transit  bool
		wantPub  []string
		wantSubs []string
	}{
		{"own signals only", false, []string{"an.link.op-b.op-b.>", "an.ack.op-a.>"}, []string{"an.link.op-a.>", "an.ack.op-b.>"}},
		{"transit accepted", true, []string{"an.link.op-b.>", "an.ack.op-a.>"}, []string{"an.link.op-a.>", "an.ack.op-b.>"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &config.Peer{ID: "op-b", Import: config.ImportPolicy{Transit: tt.transit}}
			pub, sub := natsconf.LeafPermissions("op-a", p)
			assert.Equal(t, tt.wantPub, pub)
			assert.Equal(t, tt.wantSubs, sub)
			for _, s := range append(pub, sub...) {
				assert.NotContains(t, []string{">", "$JS.>", "$SYS.>", "$KV.>", subject.Signals, subject.Store}, s)
			}
		})
	}
}

func TestRemoteURL(t *testing.T) {
	tests := []struct {
		name string
		dial config.Dial
		want string
	}{
		{"no user", config.Dial{URL: "nats-leaf://h:7422"}, "nats-leaf://h:7422"},
		{"user and password", config.Dial{URL: "nats-leaf://h:7422", User: "op-a", Password: "pw"}, "nats-leaf://op-a:pw@h:7422"},
		{"escaped", config.Dial{URL: "tls://h:7422", User: "a b", Password: `p#"\ @:/`}, "tls://a%20b:p%23%22%5C%20%40%3A%2F@h:7422"},
		{"credentials replace URL's own", config.Dial{URL: "nats-leaf://x:y@h:7422", User: "u", Password: "p"}, "nats-leaf://u:p@h:7422"},
		{"unparsable URL kept", config.Dial{URL: "://bad", User: "u", Password: "p"}, "://bad"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, natsconf.RemoteURL(&tt.dial))
		})
	}
}

func TestSecrets(t *testing.T) {
	cfg := threePeers(t)
	sec, err := natsconf.NewSecrets(cfg)
	require.NoError(t, err)
	assert.Len(t, sec, 2+len(cfg.Peers))
	seen := map[string]bool{}
	for acct := range sec {
		pub := sec.Public(acct)
		assert.True(t, strings.HasPrefix(pub, "U"), "user nkey for %s: %q", acct, pub)
		assert.False(t, seen[pub], "key reused")
		seen[pub] = true
	}
	assert.Empty(t, sec.Public("PEER_unknown"))

	again, err := natsconf.NewSecrets(cfg)
	require.NoError(t, err)
	assert.NotEqual(t, sec.Public(natsconf.OpsAccount), again.Public(natsconf.OpsAccount), "fresh keys at every start")
}

// A server started from a generated config lets a local user in over TCP
// with its password, and keeps the internal NKey users in-process only.
func TestGeneratedConfigServes(t *testing.T) {
	cfg := onePeer(t)
	opts, sec := parse(t, cfg)
	srv := natstest.StartServer(t, opts)
	url := srv.ClientURL()
	opsKey := sec[natsconf.OpsAccount]

	t.Run("local user over TCP with its password", func(t *testing.T) {
		nc, err := nats.Connect(url, nats.UserInfo("loop", nastyPass))
		require.NoError(t, err)
		defer nc.Close()
		assert.NoError(t, nc.Flush())
	})
	t.Run("local user with a wrong password", func(t *testing.T) {
		_, err := nats.Connect(url, nats.UserInfo("loop", "wrong-password"), nats.NoReconnect())
		assert.ErrorIs(t, err, nats.ErrAuthorization)
	})
	t.Run("internal nkey user over TCP", func(t *testing.T) {
		_, err := nats.Connect(url, nats.Nkey(sec.Public(natsconf.OpsAccount), opsKey.Sign), nats.NoReconnect())
		assert.ErrorIs(t, err, nats.ErrAuthorization)
	})
	t.Run("internal nkey user of a peer account over TCP", func(t *testing.T) {
		acc := natsconf.PeerAccount("op-b")
		_, err := nats.Connect(url, nats.Nkey(sec.Public(acc), sec[acc].Sign), nats.NoReconnect())
		assert.ErrorIs(t, err, nats.ErrAuthorization)
	})
	t.Run("leaf user as a plain client", func(t *testing.T) {
		_, err := nats.Connect(url, nats.UserInfo("op-b", "secret-b-123"), nats.NoReconnect())
		assert.ErrorIs(t, err, nats.ErrAuthorization)
	})
	t.Run("internal nkey user in-process, with JetStream", func(t *testing.T) {
		nc, err := nats.Connect("", nats.InProcessServer(srv), nats.Nkey(sec.Public(natsconf.OpsAccount), opsKey.Sign))
		require.NoError(t, err)
		defer nc.Close()
		js, err := nc.JetStream()
		require.NoError(t, err)
		_, err = js.AccountInfo()
		assert.NoError(t, err, "JetStream enabled in %s", natsconf.OpsAccount)
	})
	t.Run("local user cannot write what only the node writes", func(t *testing.T) {
		ops, err := nats.Connect("", nats.InProcessServer(srv), nats.Nkey(sec.Public(natsconf.OpsAccount), opsKey.Sign))
		require.NoError(t, err)
		defer ops.Close()
		sub, err := ops.SubscribeSync("an.>")
		require.NoError(t, err)
		require.NoError(t, ops.Flush())

		nc, err := nats.Connect(url, nats.UserInfo("loop", nastyPass), nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))
		require.NoError(t, err)
		defer nc.Close()
		for _, s := range []string{"an.pub.first", "an.sig.op-a.fault.vpn.r", "an.store.x", "an.dlq.local.bad", "an.pub.last"} {
			require.NoError(t, nc.Publish(s, []byte("x")))
		}
		require.NoError(t, nc.Flush())
		// Messages from one connection arrive in order: if first is
		// followed by last, the three in between were dropped.
		for _, want := range []string{"an.pub.first", "an.pub.last"} {
			m, err := sub.NextMsg(5 * time.Second)
			require.NoError(t, err)
			assert.Equal(t, want, m.Subject)
		}
	})
}

func findNkey(o *server.Options, pub string) *server.NkeyUser {
	for _, nk := range o.Nkeys {
		if nk.Nkey == pub {
			return nk
		}
	}
	return nil
}

func findUser(o *server.Options, name string) *server.User {
	for _, u := range o.Users {
		if u.Username == name {
			return u
		}
	}
	return nil
}

func findRemote(o *server.Options, acct string) *server.RemoteLeafOpts {
	for _, r := range o.LeafNode.Remotes {
		if r.LocalAccount == acct {
			return r
		}
	}
	return nil
}

func countAccept(cfg *config.Config) int {
	n := 0
	for _, p := range cfg.Peers {
		if p.Accept != nil {
			n++
		}
	}
	return n
}

func connTypes(ts ...string) map[string]struct{} {
	m := map[string]struct{}{}
	for _, t := range ts {
		m[t] = struct{}{}
	}
	return m
}

// checkPassword: a pre-hashed password is kept as is; any other is stored
// only as a bcrypt hash of itself.
func checkPassword(t *testing.T, configured, stored string) {
	t.Helper()
	if strings.HasPrefix(configured, "$2") {
		assert.Equal(t, configured, stored, "bcrypt hash from config kept as is")
		return
	}
	assert.NotEqual(t, configured, stored, "password in clear")
	assert.NoError(t, bcrypt.CompareHashAndPassword([]byte(stored), []byte(configured)), "stored %q is not bcrypt(%q)", stored, configured)
}

// TestFiltersDoNotWidenPermissions: roles, tags and CESQL filters are
// pipeline rules; the NATS permissions derived from the policy do not
// depend on them, so none of them can widen what crosses a link.
func TestFiltersDoNotWidenPermissions(t *testing.T) {
	for _, transit := range []bool{false, true} {
		plain := &config.Peer{ID: "op-b", Import: config.ImportPolicy{Transit: transit}}
		wide := &config.Peer{ID: "op-b", Role: config.RoleCustomer,
			Import: config.ImportPolicy{Transit: transit, Filter: "TRUE", Tags: config.ImportTags{Add: []string{"x"}}},
			Export: config.ExportPolicy{Transit: true, TransitFrom: config.Roles, Filter: "TRUE", Tags: config.ExportTags{Add: []string{"no-export"}}}}
		pub, sub := natsconf.LeafPermissions("op-a", plain)
		wpub, wsub := natsconf.LeafPermissions("op-a", wide)
		assert.Equal(t, pub, wpub)
		assert.Equal(t, sub, wsub)
	}
}

// A peer dialled at several addresses (dial.urls): one remote with every
// URL, each with the credentials the peer issued to us.
func TestDialURLs(t *testing.T) {
	c := baseConfig(t)
	c.Peers = []config.Peer{{
		ID:   "op-e",
		Dial: &config.Dial{URLs: []string{"nats-leaf://e1.example:7422", "nats-leaf://e2.example:7422", "nats-leaf://e3.example:7422"}, User: "op-a", Password: "plain-pass-123"},
	}}
	opts, _ := parse(t, c)
	r := findRemote(opts, natsconf.PeerAccount("op-e"))
	require.NotNil(t, r)
	require.Len(t, r.URLs, 3)
	for i, u := range r.URLs {
		assert.Equal(t, fmt.Sprintf("e%d.example:7422", i+1), u.Host)
		require.NotNil(t, u.User)
		assert.Equal(t, "op-a", u.User.Username())
		pw, _ := u.User.Password()
		assert.Equal(t, "plain-pass-123", pw)
	}
}
