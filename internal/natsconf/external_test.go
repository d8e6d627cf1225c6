package natsconf_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/natsconf"
	"github.com/anfed/anfed/internal/natstest"
)

// external makes cfg an external-mode policy with its seeds in a fresh
// credentials_dir.
func external(t *testing.T, cfg *config.Config) natsconf.Secrets {
	t.Helper()
	cfg.NATS.Client = config.Listener{}
	cfg.NATS.External = &config.External{URLs: []string{"nats://127.0.0.1:4222"}, CredentialsDir: filepath.Join(t.TempDir(), "creds")}
	created, err := natsconf.EnsureSecrets(cfg)
	require.NoError(t, err)
	require.Len(t, created, 2+len(cfg.Peers))
	sec, err := natsconf.LoadSecrets(cfg)
	require.NoError(t, err)
	return sec
}

// The cluster's configuration is the embedded server's, rendered for
// servers the node reaches over the network: the same accounts, the same
// users with the same permissions, the same leaf listener and remotes.
func TestExternalHasEmbeddedPermissions(t *testing.T) {
	for name, mk := range map[string]func(*testing.T) *config.Config{
		"one accepted peer": onePeer, "three peers": threePeers, "one dialled peer": dialOnly,
	} {
		t.Run(name, func(t *testing.T) {
			cfg := mk(t)
			cfg.NATS.LeafNodes = nil
			if name != "one dialled peer" {
				cfg.NATS.LeafNodes = &config.Listener{Listen: "127.0.0.1:7422"}
			}
			sec := external(t, cfg)
			now := time.Now()
			emb, ext := &server.Options{}, &server.Options{}
			require.NoError(t, emb.ProcessConfigString(natsconf.GenerateAt(cfg, sec, now)))
			out := natsconf.External(cfg, sec, now)
			require.NoError(t, ext.ProcessConfigString(out), out)

			assert.Empty(t, ext.ServerName, "each server names itself")
			assert.Equal(t, natsconf.SysAccount, ext.SystemAccount)
			assert.ElementsMatch(t, accountNames(emb), accountNames(ext))
			assert.Equal(t, cfg.Storage.Dir, ext.StoreDir)
			assert.True(t, ext.JetStream)

			require.Len(t, ext.Users, len(emb.Users))
			for _, eu := range emb.Users {
				xu := findUser(ext, eu.Username)
				require.NotNil(t, xu, eu.Username)
				assert.Equal(t, eu.Account.Name, xu.Account.Name)
				assert.Equal(t, eu.AllowedConnectionTypes, xu.AllowedConnectionTypes)
				assert.Equal(t, eu.Permissions, xu.Permissions, eu.Username)
			}
			require.Len(t, ext.Nkeys, len(emb.Nkeys))
			for _, acct := range natsconf.Accounts(cfg) {
				en, xn := findNkey(emb, sec.Public(acct)), findNkey(ext, sec.Public(acct))
				require.NotNil(t, xn, acct)
				assert.Equal(t, acct, xn.Account.Name)
				assert.Equal(t, en.Permissions, xn.Permissions, acct)
				assert.Equal(t, connTypes("STANDARD"), xn.AllowedConnectionTypes, "the node connects over the network")
				assert.Equal(t, connTypes("IN_PROCESS"), en.AllowedConnectionTypes)
			}
			// The peers' limits: one leaf connection for a peer that dials
			// us (max_leafnodes), in both renderings.
			for _, p := range cfg.Peers {
				want := -1 // no limit: we dial the peer
				if p.Accept != nil {
					want = config.DefaultMaxConnections
				}
				for _, o := range []*server.Options{emb, ext} {
					acc := findAccount(o, natsconf.PeerAccount(p.ID))
					require.NotNil(t, acc, p.ID)
					assert.Equal(t, want, acc.MaxActiveLeafNodes(), "%s's leaf connections", p.ID)
				}
			}
			assert.Equal(t, emb.LeafNode.Host, ext.LeafNode.Host)
			assert.Equal(t, emb.LeafNode.Port, ext.LeafNode.Port)
			require.Len(t, ext.LeafNode.Remotes, len(emb.LeafNode.Remotes))
			for i, r := range emb.LeafNode.Remotes {
				x := ext.LeafNode.Remotes[i]
				assert.Equal(t, r.LocalAccount, x.LocalAccount)
				assert.Equal(t, r.URLs, x.URLs)
				assert.Equal(t, r.IgnoreDiscoveredServers, x.IgnoreDiscoveredServers)
			}
		})
	}
}

func TestExternalWithoutStorageDir(t *testing.T) {
	cfg := onePeer(t)
	cfg.Storage.Dir = ""
	sec := external(t, cfg)
	out := natsconf.External(cfg, sec, time.Now())
	o := &server.Options{}
	require.NoError(t, o.ProcessConfigString(out))
	assert.False(t, o.JetStream, "each server's own file enables JetStream")
	assert.Contains(t, out, "# jetstream { store_dir:")
}

func TestSecretsFromCredentialsDir(t *testing.T) {
	cfg := onePeer(t)
	sec := external(t, cfg)
	dir := cfg.NATS.External.CredentialsDir
	for _, acct := range natsconf.Accounts(cfg) {
		fi, err := os.Stat(natsconf.SeedFile(dir, acct))
		require.NoError(t, err)
		assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), acct)
	}

	created, err := natsconf.EnsureSecrets(cfg)
	require.NoError(t, err)
	assert.Empty(t, created, "a seed in place is never replaced")
	again, err := natsconf.LoadSecrets(cfg)
	require.NoError(t, err)
	for _, acct := range natsconf.Accounts(cfg) {
		assert.Equal(t, sec.Public(acct), again.Public(acct), "stable across loads: the servers know these keys")
	}

	t.Run("a new peer gets its seed", func(t *testing.T) {
		cfg.Peers = append(cfg.Peers, config.Peer{ID: "op-z", Accept: &config.Accept{User: "op-z", Password: "secret-z-123"}})
		created, err := natsconf.EnsureSecrets(cfg)
		require.NoError(t, err)
		assert.Equal(t, []string{natsconf.SeedFile(dir, "PEER_op-z")}, created)
		cfg.Peers = cfg.Peers[:1]
	})
	t.Run("missing seed", func(t *testing.T) {
		require.NoError(t, os.Remove(natsconf.SeedFile(dir, natsconf.OpsAccount)))
		_, err := natsconf.LoadSecrets(cfg)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "OPS.nk does not exist")
		assert.Contains(t, err.Error(), "anfed natsconf --config")
	})
	t.Run("not a user seed", func(t *testing.T) {
		kp, err := nkeys.CreateAccount()
		require.NoError(t, err)
		seed, _ := kp.Seed()
		require.NoError(t, os.WriteFile(natsconf.SeedFile(dir, natsconf.OpsAccount), seed, 0o600))
		_, err = natsconf.LoadSecrets(cfg)
		require.Error(t, err)
		assert.Contains(t, err.Error(), `not a user NKey seed`)
	})
	t.Run("garbage", func(t *testing.T) {
		require.NoError(t, os.WriteFile(natsconf.SeedFile(dir, natsconf.OpsAccount), []byte("hello"), 0o600))
		_, err := natsconf.LoadSecrets(cfg)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "OPS.nk")
	})
}

// A server whose own file includes the derived configuration lets the
// node's users in over TCP, each in its account; the system user may ask
// for leaf connections and nothing else; a local user cannot use a node
// key's account.
func TestExternalConfigServes(t *testing.T) {
	cfg := onePeer(t)
	cfg.Storage.Dir = ""
	cfg.NATS.LeafNodes = &config.Listener{Listen: "127.0.0.1:7422"}
	sec := external(t, cfg)
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "anfed.conf"), []byte(natsconf.External(cfg, sec, time.Now())), 0o600))
	own := "server_name: n1\nlisten: 127.0.0.1:-1\ninclude \"anfed.conf\"\njetstream { store_dir: \"" + filepath.ToSlash(filepath.Join(dir, "js")) + "\" }\n"
	require.NoError(t, os.WriteFile(filepath.Join(dir, "n1.conf"), []byte(own), 0o600))
	opts, err := server.ProcessConfigFile(filepath.Join(dir, "n1.conf"))
	require.NoError(t, err)
	opts.LeafNode.Port = -1 // a free port, not the policy's
	srv := natstest.StartServer(t, opts)
	url := srv.ClientURL()

	as := func(acct string) (*nats.Conn, error) {
		return nats.Connect(url, nats.Nkey(sec.Public(acct), sec[acct].Sign), nats.NoReconnect())
	}
	for _, acct := range natsconf.Accounts(cfg) {
		nc, err := as(acct)
		require.NoError(t, err, acct)
		m, err := nc.Request("$SYS.REQ.USER.INFO", nil, 5*time.Second)
		require.NoError(t, err, acct)
		var info struct {
			Data struct {
				Account string `json:"account"`
			} `json:"data"`
		}
		require.NoError(t, json.Unmarshal(m.Data, &info))
		assert.Equal(t, acct, info.Data.Account)
		nc.Close()
	}

	ops, err := as(natsconf.OpsAccount)
	require.NoError(t, err)
	defer ops.Close()
	js, err := ops.JetStream()
	require.NoError(t, err)
	_, err = js.AccountInfo()
	assert.NoError(t, err, "JetStream in OPS")

	errs := make(chan error, 4)
	sys, err := nats.Connect(url, nats.Nkey(sec.Public(natsconf.SysAccount), sec[natsconf.SysAccount].Sign), nats.NoReconnect(),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { errs <- err }))
	require.NoError(t, err)
	defer sys.Close()
	_, err = sys.Request("$SYS.REQ.SERVER.PING.LEAFZ", []byte(`{"account":"PEER_op-b"}`), 5*time.Second)
	assert.NoError(t, err, "the node asks for leaf connections")
	require.NoError(t, sys.Publish("$SYS.REQ.SERVER.PING.CONNZ", nil))
	require.NoError(t, sys.Flush())
	select {
	case err := <-errs:
		assert.ErrorContains(t, err, "Permissions Violation")
	case <-time.After(5 * time.Second):
		t.Fatal("the node's system user may ask for CONNZ")
	}

	_, err = nats.Connect(url, nats.UserInfo("op-b", "secret-b-123"), nats.NoReconnect())
	assert.ErrorIs(t, err, nats.ErrAuthorization, "a leaf user is not a client")
}

func findAccount(o *server.Options, name string) *server.Account {
	for _, a := range o.Accounts {
		if a.Name == name {
			return a
		}
	}
	return nil
}

func accountNames(o *server.Options) []string {
	var names []string
	for _, a := range o.Accounts {
		names = append(names, a.Name)
	}
	return names
}
