// Package deploy checks the deployment files in this folder: the
// docker-compose federation, the Kubernetes manifests with the NATS Helm
// chart's values, and the systemd unit. It holds tests only.
//
// What is checked is what would break a deployment: every YAML parses,
// every anfed policy loads, every NATS configuration nats-server reads
// (with the part `anfed natsconf` derives from the policy, rendered by the
// same code), and the files agree with each other — ports, volumes and
// mount paths, service names in URLs, certificates and pinned keys.
package deploy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"go.yaml.in/yaml/v3"

	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/natsconf"
	"github.com/anfed/anfed/internal/natstest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// --- small YAML helpers -------------------------------------------------

type obj = map[string]any

func readYAML(t *testing.T, file string) obj {
	t.Helper()
	b, err := os.ReadFile(file)
	require.NoError(t, err)
	var v obj
	require.NoError(t, yaml.Unmarshal(b, &v), file)
	return v
}

// at walks a YAML tree by keys and indexes ("services", "nats-a-1", ...).
func at(v any, keys ...any) any {
	for _, k := range keys {
		switch k := k.(type) {
		case string:
			m, ok := v.(obj)
			if !ok {
				return nil
			}
			v = m[k]
		case int:
			l, ok := v.([]any)
			if !ok || k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

func str(v any) string {
	if v == nil {
		return ""
	}
	return fmt.Sprint(v)
}

func list(v any) []any {
	l, _ := v.([]any)
	return l
}

// Every YAML file in the folder parses, every document of it.
func TestEveryYAMLParses(t *testing.T) {
	n := 0
	err := filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || (!strings.HasSuffix(p, ".yaml") && !strings.HasSuffix(p, ".yml")) {
			return err
		}
		b, err := os.ReadFile(p)
		require.NoError(t, err)
		dec := yaml.NewDecoder(bytes.NewReader(b))
		for {
			var v any
			if err := dec.Decode(&v); err != nil {
				if err.Error() != "EOF" {
					t.Errorf("%s: %v", p, err)
				}
				break
			}
		}
		n++
		return nil
	})
	require.NoError(t, err)
	t.Logf("%d YAML files parse", n)
	assert.GreaterOrEqual(t, n, 10)
}

// --- docker compose -------------------------------------------------------

var composeOps = []string{"a", "b", "c"}

// composeReplicas is how many anfed processes each operator runs on its
// cluster: op-a two (anfed-a, anfed-a-2), to show several processes of
// one operator.
var composeReplicas = map[string]int{"a": 2, "b": 1, "c": 1}

// composeNodes are op's anfed processes: anfed-X, then anfed-X-2, ….
func composeNodes(services map[string]composeService, op string) []composeService {
	out := []composeService{services["anfed-"+op]}
	for i := 2; ; i++ {
		s, ok := services[fmt.Sprintf("anfed-%s-%d", op, i)]
		if !ok {
			return out
		}
		out = append(out, s)
	}
}

// composeService is one service of the compose file.
type composeService struct {
	name string
	raw  obj
}

func (s composeService) command() []string {
	var out []string
	for _, a := range list(s.raw["command"]) {
		out = append(out, str(a))
	}
	return out
}

// mounts maps each volume target in the container to its source (a
// relative host path for a bind mount, a volume name otherwise).
func (s composeService) mounts() map[string]string {
	m := map[string]string{}
	for _, v := range list(s.raw["volumes"]) {
		parts := strings.Split(str(v), ":")
		if len(parts) >= 2 {
			m[parts[1]] = parts[0]
		}
	}
	return m
}

// mountFor finds the mount that holds container path p and returns its
// source with the rest of the path.
func (s composeService) mountFor(p string) (source, rest string, ok bool) {
	best := ""
	for target := range s.mounts() {
		if (p == target || strings.HasPrefix(p, target+"/")) && len(target) > len(best) {
			best = target
		}
	}
	if best == "" {
		return "", "", false
	}
	return s.mounts()[best], strings.TrimPrefix(strings.TrimPrefix(p, best), "/"), true
}

// copyTree copies the folders a compose run reads (deploy/compose and the
// example keys it names) under a temporary root, so that the test may
// write the generated parts next to them.
func copyTree(t *testing.T, root string, dirs ...string) {
	t.Helper()
	for _, dir := range dirs {
		src := filepath.Join("..", dir)
		err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel("..", p)
			if d.IsDir() {
				return os.MkdirAll(filepath.Join(root, rel), 0o755)
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(root, rel), b, 0o600)
		})
		require.NoError(t, err)
	}
}

// The compose federation: three operators, each a three-server NATS
// cluster and a node in external-NATS mode, joined by TLS leaf links.
func TestComposeFederation(t *testing.T) {
	doc := readYAML(t, "compose/docker-compose.yaml")
	services := map[string]composeService{}
	for name, raw := range at(doc, "services").(obj) {
		services[name] = composeService{name: name, raw: raw.(obj)}
	}
	var want []string
	for _, op := range composeOps {
		want = append(want, "anfed-natsconf-"+op, "nats-"+op+"-1", "nats-"+op+"-2", "nats-"+op+"-3", "anfed-"+op)
		for i := 2; i <= composeReplicas[op]; i++ {
			want = append(want, fmt.Sprintf("anfed-%s-%d", op, i))
		}
	}
	got := make([]string, 0, len(services))
	for n := range services {
		got = append(got, n)
	}
	assert.ElementsMatch(t, want, got, "per operator: natsconf, three NATS servers, the node (op-a: two processes)")

	root := t.TempDir()
	copyTree(t, root, "deploy/compose", "examples/federation/keys")
	dir := filepath.Join(root, "deploy", "compose")

	// Each operator's files agree with each other.
	cfgs := map[string]*config.Config{}
	for _, op := range composeOps {
		t.Run("op-"+op, func(t *testing.T) {
			cfgs["op-"+op] = checkComposeOperator(t, dir, services, op)
		})
	}
	require.Len(t, cfgs, 3)

	t.Run("peerings", func(t *testing.T) { checkPeerings(t, doc, cfgs) })
	t.Run("ports and volumes", func(t *testing.T) { checkPortsAndVolumes(t, doc, services, cfgs) })
	t.Run("certificates", func(t *testing.T) { checkCerts(t, "compose/certs") })
	t.Run("docker compose config", func(t *testing.T) {
		if err := exec.Command("docker", "compose", "version").Run(); err != nil {
			t.Skipf("`docker compose version` does not work here (%v): the compose file is checked by this test's own parser only", err)
		}
		out, err := exec.Command("docker", "compose", "-f", "compose/docker-compose.yaml", "config", "-q").CombinedOutput()
		assert.NoError(t, err, "docker compose config: %s", out)
	})
}

// checkComposeOperator checks op's policy, natsconf service, servers and
// node, renders the servers' generated part with natsconf and has
// nats-server read each server's configuration. It returns the policy.
func checkComposeOperator(t *testing.T, dir string, services map[string]composeService, op string) *config.Config {
	id := "op-" + op
	natsconfSvc, nodes := services["anfed-natsconf-"+op], composeNodes(services, op)
	require.Len(t, nodes, composeReplicas[op], "op-%s's anfed processes", op)

	// The policy: mounted at the same place in the natsconf service and
	// every process of the node, which all name it.
	const policyPath = "/etc/anfed/anfed.yaml"
	for _, s := range append([]composeService{natsconfSvc}, nodes...) {
		require.Equal(t, "./"+id+"/anfed.yaml", s.mounts()[policyPath], "%s mounts op-%s's policy at %s", s.name, op, policyPath)
		assert.Contains(t, strings.Join(s.command(), " "), "--config "+policyPath, s.name)
	}
	policyFile := filepath.Join(dir, id, "anfed.yaml")
	cfg, err := config.Load(policyFile)
	require.NoError(t, err, "the policy loads (anfed validate)")
	require.Equal(t, id, cfg.Operator.ID)
	ext := cfg.NATS.External
	require.NotNil(t, ext, "external-NATS mode")
	assert.Equal(t, 3, cfg.Storage.Replicas, "JetStream R3 over the three servers")
	for _, node := range nodes[1:] {
		// The same process again, on the same cluster: command, secrets,
		// mounts, networks and start order as the first.
		for _, k := range []string{"command", "secrets", "volumes", "networks", "depends_on", "restart", "stop_grace_period"} {
			assert.Equal(t, nodes[0].raw[k], node.raw[k], "%s's %s as %s's", node.name, k, nodes[0].name)
		}
	}

	// The node reaches each of its servers, and only its own.
	var hosts []string
	for _, u := range ext.URLs {
		pu, err := url.Parse(u)
		require.NoError(t, err)
		host, port, _ := net.SplitHostPort(pu.Host)
		hosts = append(hosts, host)
		assert.Equal(t, "4222", port, u)
	}
	assert.ElementsMatch(t, []string{"nats-" + op + "-1", "nats-" + op + "-2", "nats-" + op + "-3"}, hosts)
	for _, h := range hosts {
		assert.True(t, onNetwork(services[h], id), "%s is on network %s, with the node", h, id)
	}
	for _, node := range nodes {
		assert.True(t, onNetwork(node, id), node.name)
		assert.False(t, onNetwork(node, "interconnect"), "%s is not on the operators' border network", node.name)
	}

	// The seeds: written by the natsconf service, read by the node, in
	// the same volume at credentials_dir.
	credVol := natsconfSvc.mounts()[ext.CredentialsDir]
	require.NotEmpty(t, credVol, "natsconf mounts a volume at credentials_dir %s", ext.CredentialsDir)
	for _, node := range nodes {
		assert.Equal(t, credVol, node.mounts()[ext.CredentialsDir], "%s reads the seeds natsconf wrote", node.name)
	}

	// The signing key: a compose secret, at the path the policy names.
	secret := strings.TrimPrefix(cfg.Operator.SigningKeyFile, "/run/secrets/")
	require.NotEqual(t, cfg.Operator.SigningKeyFile, secret, "signing_key_file is a compose secret")
	for _, node := range nodes {
		assert.Contains(t, list(node.raw["secrets"]), secret, node.name)
	}

	// The generated part, where the servers include it: natsconf writes
	// -o FILE in its volume; each server mounts that volume and includes
	// the file relative to its own configuration.
	cmd := natsconfSvc.command()
	require.GreaterOrEqual(t, len(cmd), 2)
	assert.Equal(t, "natsconf", cmd[0])
	oPath := cmd[slices.Index(cmd, "-o")+1]
	genVol, genRest, ok := natsconfSvc.mountFor(oPath)
	require.True(t, ok, "natsconf writes %s into a volume", oPath)

	// Render it with natsconf's code, credentials in a temporary
	// directory instead of the volume.
	ext.CredentialsDir = t.TempDir()
	_, err = natsconf.EnsureSecrets(cfg)
	require.NoError(t, err)
	sec, err := natsconf.LoadSecrets(cfg)
	require.NoError(t, err)
	generated := natsconf.External(cfg, sec, time.Now())

	include := regexp.MustCompile(`(?m)^include "([^"]+)"`)
	for n := 1; n <= 3; n++ {
		name := fmt.Sprintf("nats-%s-%d", op, n)
		s := services[name]
		confPath := fmt.Sprintf("/etc/nats/nats-%d.conf", n)
		assert.Equal(t, []string{"-c", confPath}, s.command(), name)
		require.Equal(t, fmt.Sprintf("./%s/nats-%d.conf", id, n), s.mounts()[confPath], name)
		hostConf := filepath.Join(dir, id, fmt.Sprintf("nats-%d.conf", n))
		b, err := os.ReadFile(hostConf)
		require.NoError(t, err)
		m := include.FindSubmatch(b)
		require.NotNil(t, m, "%s includes the generated part", hostConf)
		incl := path.Join(path.Dir(confPath), string(m[1]))
		vol, rest, ok := s.mountFor(incl)
		require.True(t, ok, "%s: the include %s is in a mounted volume", name, incl)
		assert.Equal(t, genVol, vol, "%s includes what natsconf wrote (volume)", name)
		assert.Equal(t, genRest, rest, "%s includes what natsconf wrote (file)", name)
		// Next to the host file, as the include resolves it here.
		hostGen := filepath.Join(filepath.Dir(hostConf), filepath.FromSlash(string(m[1])))
		require.NoError(t, os.MkdirAll(filepath.Dir(hostGen), 0o755))
		require.NoError(t, os.WriteFile(hostGen, []byte(generated), 0o600))

		opts, err := server.ProcessConfigFile(hostConf)
		require.NoError(t, err, "nats-server reads %s with the generated part", hostConf)
		assert.Equal(t, name, opts.ServerName)
		assert.Equal(t, 4222, opts.Port)
		assert.Equal(t, id, opts.Cluster.Name)
		var routes []string
		for _, r := range opts.Routes {
			routes = append(routes, r.Hostname())
			assert.Equal(t, "6222", r.Port(), "route port = cluster listen port")
		}
		assert.ElementsMatch(t, hosts, routes, "%s routes to its cluster's three servers", name)
		assert.Equal(t, 6222, opts.Cluster.Port)
		assert.True(t, opts.JetStream)
		assert.Equal(t, fmt.Sprintf("nats-%s-%d-data", op, n), s.mounts()[opts.StoreDir], "%s keeps JetStream (%s) in its own volume", name, opts.StoreDir)
		assert.Equal(t, "SYS", opts.SystemAccount)
		accounts := map[string]bool{}
		for _, a := range opts.Accounts {
			accounts[a.Name] = true
		}
		for _, a := range natsconf.Accounts(cfg) {
			assert.True(t, accounts[a], "%s has account %s", name, a)
		}
		if cfg.NATS.LeafNodes != nil {
			_, port, _ := net.SplitHostPort(cfg.NATS.LeafNodes.Listen)
			assert.Equal(t, port, strconv.Itoa(opts.LeafNode.Port), "leaf listener")
			assert.NotNil(t, opts.LeafNode.TLSConfig, "leaf listener with TLS")
			assert.True(t, onNetwork(s, "interconnect"), "%s is on the border network, where peers dial it", name)
		}
		var dials []string
		for _, p := range cfg.Peers {
			if p.Dial != nil {
				dials = append(dials, p.ID)
			}
		}
		assert.Len(t, opts.LeafNode.Remotes, len(dials), "%s dials each peer op-%s dials", name, op)
		for _, r := range opts.LeafNode.Remotes {
			assert.NotNil(t, r.TLSConfig, "%s: a TLS leaf remote", name)
		}
	}

	// TLS files the policy names (relative to it) are in the same place
	// in every container that reads them: the policy's directory there is
	// /etc/anfed, the certificates' /etc/certs.
	raw := readYAML(t, filepath.Join("compose", id, "anfed.yaml"))
	var tlsFiles []string
	for _, v := range []any{at(raw, "nats", "leafnodes", "tls")} {
		if m, ok := v.(obj); ok {
			for _, f := range m {
				tlsFiles = append(tlsFiles, str(f))
			}
		}
	}
	for i := range list(at(raw, "peers")) {
		if m, ok := at(raw, "peers", i, "dial", "tls").(obj); ok {
			for _, f := range m {
				tlsFiles = append(tlsFiles, str(f))
			}
		}
	}
	for _, f := range tlsFiles {
		inContainer := path.Join(path.Dir(policyPath), f)
		for _, s := range []composeService{natsconfSvc, services["nats-"+op+"-1"], services["nats-"+op+"-2"], services["nats-"+op+"-3"]} {
			src, rest, ok := s.mountFor(inContainer)
			if assert.True(t, ok, "%s: %s (%s in the policy) is mounted", s.name, inContainer, f) {
				assert.FileExists(t, filepath.Join("compose", src, rest), s.name)
			}
		}
	}
	return cfg
}

func onNetwork(s composeService, network string) bool {
	switch n := s.raw["networks"].(type) {
	case []any:
		return slices.Contains(n, any(network))
	case obj:
		_, ok := n[network]
		return ok
	}
	return false
}

// checkPeerings: each accept matches the peer's dial (user, password, the
// URL's host is an alias of the accepting operator's servers on the border
// network, port its leaf listener), and each pinned key is the peer's
// signing key, read from the secret file the compose file names.
func checkPeerings(t *testing.T, doc obj, cfgs map[string]*config.Config) {
	pubs := map[string]string{}
	for _, id := range []string{"op-a", "op-b", "op-c"} {
		file := str(at(doc, "secrets", id+"-signing-key", "file"))
		require.NotEmpty(t, file, "secret %s-signing-key", id)
		seed, err := os.ReadFile(filepath.Join("compose", file))
		require.NoError(t, err)
		kp, err := nkeys.FromSeed(bytes.TrimSpace(seed))
		require.NoError(t, err)
		pubs[id], err = kp.PublicKey()
		require.NoError(t, err)
	}
	links := 0
	for id, cfg := range cfgs {
		for _, p := range cfg.Peers {
			assert.Equal(t, pubs[p.ID], p.SigningKey, "%s pins %s's signing key", id, p.ID)
			back, ok := cfgs[p.ID].Peer(id)
			require.True(t, ok, "%s knows %s back", p.ID, id)
			if p.Dial == nil {
				continue
			}
			links++
			require.NotNil(t, back.Accept, "%s dials %s, which accepts", id, p.ID)
			assert.Equal(t, back.Accept.User, p.Dial.User)
			assert.Equal(t, back.Accept.Password, p.Dial.Password)
			u, err := url.Parse(p.Dial.URL)
			require.NoError(t, err)
			assert.Equal(t, "tls", u.Scheme, "%s dials %s with TLS", id, p.ID)
			host, port, _ := net.SplitHostPort(u.Host)
			_, lport, _ := net.SplitHostPort(cfgs[p.ID].NATS.LeafNodes.Listen)
			assert.Equal(t, lport, port)
			op := strings.TrimPrefix(p.ID, "op-")
			for n := 1; n <= 3; n++ {
				aliases := list(at(doc, "services", fmt.Sprintf("nats-%s-%d", op, n), "networks", "interconnect", "aliases"))
				assert.Contains(t, aliases, any(host), "nats-%s-%d answers to %s on the border network", op, n, host)
			}
		}
	}
	assert.Equal(t, 2, links, "op-b dials op-a, op-c dials op-b")
}

// checkPortsAndVolumes: host ports are published on loopback once each;
// each node publishes the port its policy's http.listen names; named
// volumes are declared and used, bind sources exist.
func checkPortsAndVolumes(t *testing.T, doc obj, services map[string]composeService, cfgs map[string]*config.Config) {
	seen := map[string]string{}
	for name, s := range services {
		for _, p := range list(s.raw["ports"]) {
			parts := strings.Split(str(p), ":")
			require.Len(t, parts, 3, "%s: %s: want 127.0.0.1:HOST:CONTAINER", name, p)
			assert.Equal(t, "127.0.0.1", parts[0], "%s publishes on loopback only", name)
			if other, dup := seen[parts[1]]; dup {
				t.Errorf("host port %s published by %s and %s", parts[1], other, name)
			}
			seen[parts[1]] = name
		}
	}
	for id, cfg := range cfgs {
		_, port, _ := net.SplitHostPort(cfg.HTTP.Listen)
		for i, node := range composeNodes(services, strings.TrimPrefix(id, "op-")) {
			if i == 0 {
				assert.Contains(t, list(node.raw["ports"]), any("127.0.0.1:"+port+":"+port), "%s publishes its HTTP port", node.name)
				continue
			}
			// Another port on the host (unique: checked above), the
			// policy's in the container.
			ports := list(node.raw["ports"])
			if assert.Len(t, ports, 1, node.name) {
				assert.True(t, strings.HasSuffix(str(ports[0]), ":"+port), "%s publishes its HTTP port %s: %s", node.name, port, ports[0])
			}
		}
	}
	declared := map[string]bool{}
	for v := range at(doc, "volumes").(obj) {
		declared[v] = false
	}
	for name, s := range services {
		for target, src := range s.mounts() {
			if strings.HasPrefix(src, ".") {
				_, err := os.Stat(filepath.Join("compose", src))
				assert.NoError(t, err, "%s: bind source %s of %s", name, src, target)
				continue
			}
			_, ok := declared[src]
			assert.True(t, ok, "%s: volume %s is declared", name, src)
			declared[src] = true
		}
	}
	for v, used := range declared {
		assert.True(t, used, "volume %s is used", v)
	}
	// The image makes the directories these volumes are mounted on, owned
	// by its user, so that a fresh volume is writable by the node.
	df, err := os.ReadFile("docker/Dockerfile")
	require.NoError(t, err)
	for _, target := range []string{"/var/lib/anfed/nats-creds", "/etc/nats/generated"} {
		assert.Contains(t, string(df), "/out"+target, "the image makes %s", target)
	}
}

// checkCerts: the CA signs each operator's certificate, which is good for
// both ends of a leaf link, names every address a peer dials it at, and
// lasts another year at least.
func checkCerts(t *testing.T, dir string) {
	ca := readCert(t, filepath.Join(dir, "ca.pem"))
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	for _, op := range composeOps {
		c := readCert(t, filepath.Join(dir, "op-"+op+".pem"))
		for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
			_, err := c.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{usage}, CurrentTime: time.Now().AddDate(1, 0, 0)})
			assert.NoError(t, err, "op-%s's certificate, usage %v, a year from now", op, usage)
		}
		if op != "c" {
			assert.Contains(t, c.DNSNames, "leaf-op-"+op)
		}
		_, err := os.Stat(filepath.Join(dir, "op-"+op+"-key.pem"))
		assert.NoError(t, err)
	}
}

func readCert(t *testing.T, file string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(file)
	require.NoError(t, err)
	blk, _ := pem.Decode(b)
	require.NotNil(t, blk, "%s: PEM", file)
	c, err := x509.ParseCertificate(blk.Bytes)
	require.NoError(t, err)
	return c
}

// --- Kubernetes -----------------------------------------------------------

// k8sDocs are the manifests kustomize renders, by kind/name; with kubectl
// on the PATH, rendered by `kubectl kustomize`, otherwise read from the
// files the kustomization lists (the policy ConfigMap made here).
func k8sDocs(t *testing.T) map[string]obj {
	t.Helper()
	var docs []obj
	if kubectl, err := exec.LookPath("kubectl"); err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, kubectl, "kustomize", "kubernetes").Output()
		require.NoError(t, err, "kubectl kustomize: %v", err)
		dec := yaml.NewDecoder(bytes.NewReader(out))
		for {
			var d obj
			if err := dec.Decode(&d); err != nil {
				break
			}
			docs = append(docs, d)
		}
		t.Logf("kubectl kustomize rendered %d objects", len(docs))
	} else {
		t.Logf("kubectl is not on the PATH: the manifests are read as written, without kustomize")
		k := readYAML(t, "kubernetes/kustomization.yaml")
		for _, r := range list(k["resources"]) {
			docs = append(docs, readYAML(t, filepath.Join("kubernetes", str(r))))
		}
		policy, err := os.ReadFile("kubernetes/anfed.yaml")
		require.NoError(t, err)
		docs = append(docs, obj{"kind": "ConfigMap", "metadata": obj{"name": "anfed-policy"}, "data": obj{"anfed.yaml": string(policy)}})
	}
	m := map[string]obj{}
	for _, d := range docs {
		m[str(d["kind"])+"/"+str(at(d, "metadata", "name"))] = d
	}
	return m
}

// podMounts maps mount path to volume for a container, and volume name to
// its definition for the pod.
func podMounts(container obj) map[string]string {
	m := map[string]string{}
	for _, vm := range list(container["volumeMounts"]) {
		m[str(at(vm, "mountPath"))] = str(at(vm, "name"))
	}
	return m
}

func mountOf(mounts map[string]string, p string) (volume, mountPath string) {
	for mp, v := range mounts {
		if (p == mp || strings.HasPrefix(p, mp+"/")) && len(mp) > len(mountPath) {
			volume, mountPath = v, mp
		}
	}
	return volume, mountPath
}

// The Kubernetes manifests and the NATS chart's values: the node's
// Deployment, the policy ConfigMap both pods read, and the NATS pods' init
// container that renders their part with `anfed natsconf`, all agree; the
// rendered part, included the way the chart includes it, is read by
// nats-server, and its leaf listener (TLS) replaces the chart's.
func TestKubernetes(t *testing.T) {
	docs := k8sDocs(t)
	for _, k := range []string{"Namespace/anfed", "Deployment/anfed", "PodDisruptionBudget/anfed", "Service/anfed", "Service/anfed-leafnodes", "ConfigMap/anfed-policy"} {
		require.Contains(t, docs, k)
	}
	// No single process on the path: two or more, never all evicted at
	// once, and no Recreate (which stops every process before starting
	// one): the links' leases keep one holder per link.
	assert.GreaterOrEqual(t, at(docs["Deployment/anfed"], "spec", "replicas").(int), 2, "replicas")
	assert.NotEqual(t, "Recreate", str(at(docs["Deployment/anfed"], "spec", "strategy", "type")))
	assert.Equal(t, 1, at(docs["PodDisruptionBudget/anfed"], "spec", "minAvailable"))
	assert.Equal(t, at(docs["Deployment/anfed"], "spec", "selector", "matchLabels"), at(docs["PodDisruptionBudget/anfed"], "spec", "selector", "matchLabels"))
	values := readYAML(t, "kubernetes/nats-values.yaml")

	// The policy, from the ConfigMap as rendered.
	policyText := str(at(docs["ConfigMap/anfed-policy"], "data", "anfed.yaml"))
	policyFile := filepath.Join(t.TempDir(), "anfed.yaml")
	require.NoError(t, os.WriteFile(policyFile, []byte(policyText), 0o600))
	cfg, err := config.Load(policyFile)
	require.NoError(t, err, "the policy loads")
	ext := cfg.NATS.External
	require.NotNil(t, ext)

	// URLs name the chart's pods (release "nats"), one per replica.
	replicas := at(values, "config", "cluster", "replicas").(int)
	assert.Equal(t, replicas, cfg.Storage.Replicas, "storage.replicas = the cluster's servers")
	var want, hosts []string
	for i := range replicas {
		want = append(want, fmt.Sprintf("nats-%d.nats-headless", i))
	}
	for _, u := range ext.URLs {
		pu, err := url.Parse(u)
		require.NoError(t, err)
		hosts = append(hosts, pu.Hostname())
		assert.Equal(t, "4222", pu.Port())
	}
	assert.ElementsMatch(t, want, hosts)
	assert.Equal(t, true, at(values, "config", "jetstream", "enabled"))

	// Leaf port: the policy's listener, the chart's port, the service.
	_, lport, _ := net.SplitHostPort(cfg.NATS.LeafNodes.Listen)
	assert.Equal(t, lport, str(at(values, "config", "leafnodes", "port")))
	assert.Equal(t, lport, str(at(docs["Service/anfed-leafnodes"], "spec", "ports", 0, "targetPort")))

	// The node's pod: the policy, key and seeds where the policy says.
	dep := docs["Deployment/anfed"]
	pod := at(dep, "spec", "template", "spec").(obj)
	ctr := at(pod, "containers", 0).(obj)
	args := list(ctr["args"])
	require.GreaterOrEqual(t, len(args), 3)
	depMounts := podMounts(ctr)
	cfgArg := str(args[slices.Index(args, any("--config"))+1])
	vol, _ := mountOf(depMounts, cfgArg)
	assert.Equal(t, "anfed-policy", configMapOf(pod, vol), "the node reads the policy ConfigMap at %s", cfgArg)
	vol, _ = mountOf(depMounts, cfg.Operator.SigningKeyFile)
	assert.Equal(t, "anfed-signing-key", secretOf(pod, vol), "signing_key_file %s", cfg.Operator.SigningKeyFile)
	vol, _ = mountOf(depMounts, ext.CredentialsDir)
	assert.Equal(t, "anfed-nats-creds", secretOf(pod, vol), "credentials_dir %s", ext.CredentialsDir)
	_, hport, _ := net.SplitHostPort(cfg.HTTP.Listen)
	assert.Equal(t, hport, str(at(ctr, "ports", 0, "containerPort")))
	assert.Equal(t, true, at(pod, "securityContext", "runAsNonRoot"))

	// The NATS pods, as the values patch them.
	natsPod := obj{"volumes": []any{}}
	natsCtr := obj{"volumeMounts": []any{}}
	var initCtr obj
	for _, p := range list(at(values, "podTemplate", "patch")) {
		switch str(at(p, "path")) {
		case "/spec/volumes/-":
			natsPod["volumes"] = append(natsPod["volumes"].([]any), at(p, "value"))
		case "/spec/initContainers":
			initCtr = at(p, "value", 0).(obj)
		}
	}
	for _, p := range list(at(values, "container", "patch")) {
		if str(at(p, "path")) == "/volumeMounts/-" {
			natsCtr["volumeMounts"] = append(natsCtr["volumeMounts"].([]any), at(p, "value"))
		}
	}
	require.NotNil(t, initCtr, "the values add the natsconf init container")
	if _, err := exec.LookPath("kubectl"); err == nil {
		assert.Equal(t, str(ctr["image"]), str(initCtr["image"]), "the node and the NATS pods' natsconf run the same image")
	}
	initArgs := list(initCtr["args"])
	assert.Equal(t, "natsconf", str(initArgs[0]))
	initMounts := podMounts(initCtr)
	natsMounts := podMounts(natsCtr)
	initCfg := str(initArgs[slices.Index(initArgs, any("--config"))+1])
	vol, _ = mountOf(initMounts, initCfg)
	assert.Equal(t, "anfed-policy", configMapOf(natsPod, vol), "natsconf reads the same ConfigMap (fixed name) at %s", initCfg)
	assert.Equal(t, path.Base(cfgArg), path.Base(initCfg))
	vol, _ = mountOf(initMounts, ext.CredentialsDir)
	assert.Equal(t, "anfed-nats-creds", secretOf(natsPod, vol), "natsconf reads the node's seeds")
	out := str(initArgs[slices.Index(initArgs, any("-o"))+1])
	outVol, outMount := mountOf(initMounts, out)
	require.NotEmpty(t, outVol)
	found := ""
	for mp, v := range natsMounts {
		if v == outVol {
			found = mp
		}
	}
	require.NotEmpty(t, found, "the nats container mounts the volume natsconf writes")
	genInNats := path.Join(found, strings.TrimPrefix(out, outMount))
	// The chart writes /etc/nats-config/nats.conf; the include is relative.
	const chartConf = "/etc/nats-config/nats.conf"
	incl := str(at(values, "config", "merge", "zzz$include"))
	require.NotEmpty(t, incl)
	assert.Equal(t, genInNats, path.Join(path.Dir(chartConf), incl), "the include names the file natsconf wrote")
	// TLS files the policy names are mounted in both.
	tlsFiles := []string{cfg.NATS.LeafNodes.TLS.Cert, cfg.NATS.LeafNodes.TLS.Key, cfg.NATS.LeafNodes.TLS.CA}
	for _, f := range tlsFiles {
		v1, _ := mountOf(initMounts, f)
		v2, _ := mountOf(natsMounts, f)
		assert.Equal(t, "anfed-leaf-tls", secretOf(natsPod, v1), "init container: %s", f)
		assert.Equal(t, "anfed-leaf-tls", secretOf(natsPod, v2), "nats container: %s", f)
	}

	// Render and read it as a chart pod would: the files at their
	// container paths under a temporary root.
	root := t.TempDir()
	inRoot := func(p string) string { return filepath.Join(root, filepath.FromSlash(p)) }
	ca := natstest.NewCA(t)
	cert, key := ca.Issue(t, "nats-0.nats-headless")
	for src, dst := range map[string]string{cert: cfg.NATS.LeafNodes.TLS.Cert, key: cfg.NATS.LeafNodes.TLS.Key, ca.File: cfg.NATS.LeafNodes.TLS.CA} {
		b, err := os.ReadFile(src)
		require.NoError(t, err)
		require.NoError(t, os.MkdirAll(filepath.Dir(inRoot(dst)), 0o755))
		require.NoError(t, os.WriteFile(inRoot(dst), b, 0o600))
	}
	cfg.NATS.LeafNodes.TLS.Cert, cfg.NATS.LeafNodes.TLS.Key, cfg.NATS.LeafNodes.TLS.CA = inRoot(cfg.NATS.LeafNodes.TLS.Cert), inRoot(cfg.NATS.LeafNodes.TLS.Key), inRoot(cfg.NATS.LeafNodes.TLS.CA)
	ext.CredentialsDir = inRoot(ext.CredentialsDir)
	_, err = natsconf.EnsureSecrets(cfg)
	require.NoError(t, err)
	sec, err := natsconf.LoadSecrets(cfg)
	require.NoError(t, err)
	require.NoError(t, os.MkdirAll(filepath.Dir(inRoot(genInNats)), 0o755))
	require.NoError(t, os.WriteFile(inRoot(genInNats), []byte(natsconf.External(cfg, sec, time.Now())), 0o600))
	// What the chart renders for these values (cluster, JetStream, its own
	// leafnodes block), then the include last.
	chart := fmt.Sprintf(`port: 4222
http_port: 8222
server_name: nats-0
lame_duck_duration: 30s
cluster { name: nats, port: 6222, no_advertise: true, routes: ["nats://nats-0.nats-headless:6222", "nats://nats-1.nats-headless:6222", "nats://nats-2.nats-headless:6222"] }
jetstream { max_file_store: 10Gi, max_memory_store: 0, store_dir: %q }
leafnodes { port: %s, no_advertise: true }
include %s;
`, inRoot("/data"), lport, incl)
	require.NoError(t, os.MkdirAll(filepath.Dir(inRoot(chartConf)), 0o755))
	require.NoError(t, os.WriteFile(inRoot(chartConf), []byte(chart), 0o600))
	opts, err := server.ProcessConfigFile(inRoot(chartConf))
	require.NoError(t, err, "nats-server reads the chart's configuration with the generated part")
	assert.NotNil(t, opts.LeafNode.TLSConfig, "the included leafnodes block (TLS) replaces the chart's")
	assert.Equal(t, "SYS", opts.SystemAccount)
	assert.GreaterOrEqual(t, len(opts.Accounts), 3, "SYS, OPS and one account per peer")
	assert.Len(t, opts.Routes, replicas)
}

func configMapOf(pod obj, volume string) string {
	for _, v := range list(pod["volumes"]) {
		if str(at(v, "name")) == volume {
			return str(at(v, "configMap", "name"))
		}
	}
	return ""
}

func secretOf(pod obj, volume string) string {
	for _, v := range list(pod["volumes"]) {
		if str(at(v, "name")) == volume {
			return str(at(v, "secret", "secretName"))
		}
	}
	return ""
}

// --- systemd --------------------------------------------------------------

// unit reads a systemd unit file into section -> key -> values.
func unit(t *testing.T, file string) map[string]map[string][]string {
	t.Helper()
	f, err := os.Open(file)
	require.NoError(t, err)
	defer f.Close()
	u := map[string]map[string][]string{}
	section := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = strings.Trim(line, "[]")
			u[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			require.True(t, ok, "%s: %q is not key=value", file, line)
			require.NotEmpty(t, section, "%s: %q before any section", file, line)
			u[section][k] = append(u[section][k], v)
		}
	}
	require.NoError(t, sc.Err())
	return u
}

// The systemd unit: it runs `anfed serve` on the policy it validates first,
// as its own user, with its storage in its StateDirectory and the
// hardening options on; `systemd-analyze verify` accepts it and `security`
// rates its exposure low (where systemd-analyze exists).
func TestSystemdUnit(t *testing.T) {
	u := unit(t, "systemd/anfed.service")
	svc := u["Service"]
	require.NotNil(t, svc)
	one := func(k string) string {
		require.Len(t, svc[k], 1, "Service.%s", k)
		return svc[k][0]
	}
	assert.Equal(t, "anfed", one("User"))
	start := strings.Fields(one("ExecStart"))
	assert.Equal(t, []string{"/usr/local/bin/anfed", "serve", "--config", "/etc/anfed/anfed.yaml"}, start[:4])
	assert.Equal(t, "/usr/local/bin/anfed validate /etc/anfed/anfed.yaml", one("ExecStartPre"))
	assert.Equal(t, "SIGTERM", one("KillSignal"), "the node drains on SIGTERM")
	for k, v := range map[string]string{
		"NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
		"PrivateDevices": "yes", "CapabilityBoundingSet": "", "RestrictSUIDSGID": "yes", "MemoryDenyWriteExecute": "yes",
		"LockPersonality": "yes", "ProtectKernelTunables": "yes", "ProtectControlGroups": "yes", "UMask": "0077",
		"RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
	} {
		assert.Equal(t, v, one(k), "hardening: %s", k)
	}
	assert.Contains(t, svc["SystemCallFilter"], "@system-service")

	// The example policy loads, and keeps its storage in the unit's
	// StateDirectory, the only place ProtectSystem=strict lets it write.
	cfg, err := config.Load("systemd/anfed.yaml")
	require.NoError(t, err)
	assert.Equal(t, "/var/lib/"+one("StateDirectory"), cfg.Storage.Dir)
	assert.Equal(t, cfg.Storage.Dir, one("WorkingDirectory"))

	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not on the PATH: the unit is checked by this test's parser only")
	}
	// verify wants ExecStart's binary to exist: an executable stands in.
	self, err := os.Executable()
	require.NoError(t, err)
	b, err := os.ReadFile("systemd/anfed.service")
	require.NoError(t, err)
	dir := t.TempDir()
	file := filepath.Join(dir, "anfed.service")
	require.NoError(t, os.WriteFile(file, bytes.ReplaceAll(b, []byte("/usr/local/bin/anfed"), []byte(self)), 0o644))
	outb, err := exec.Command(sa, "verify", "--man=no", file).CombinedOutput()
	assert.NoError(t, err, "systemd-analyze verify: %s", outb)
	assert.Empty(t, strings.TrimSpace(string(outb)), "no warnings")

	outb, err = exec.Command(sa, "security", "--offline=yes", "--threshold=20", file).CombinedOutput()
	assert.NoError(t, err, "systemd-analyze security: exposure above 2.0:\n%s", outb)
	m := regexp.MustCompile(`Overall exposure level for anfed\.service: ([0-9.]+)`).FindSubmatch(outb)
	if assert.NotNil(t, m, "%s", outb) {
		t.Logf("systemd-analyze security: exposure %s (0 most secure, 10 least)", m[1])
	}

	// The check can fail: a misspelled option is reported.
	bad := filepath.Join(dir, "bad", "anfed.service")
	require.NoError(t, os.MkdirAll(filepath.Dir(bad), 0o755))
	require.NoError(t, os.WriteFile(bad, bytes.ReplaceAll(bytes.ReplaceAll(b, []byte("/usr/local/bin/anfed"), []byte(self)), []byte("ProtectSystem="), []byte("ProtectSytem=")), 0o644))
	outb, _ = exec.Command(sa, "verify", "--man=no", bad).CombinedOutput()
	assert.Contains(t, string(outb), "ProtectSytem", "verify reports the misspelled key")
}

// The image: the Go version it builds with is the module's, and it runs the
// node on the path the compose file mounts the policy at.
func TestDockerfile(t *testing.T) {
	df, err := os.ReadFile("docker/Dockerfile")
	require.NoError(t, err)
	mod, err := os.ReadFile("../go.mod")
	require.NoError(t, err)
	goVer := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(mod)
	require.NotNil(t, goVer)
	assert.Regexp(t, `(?m)^FROM golang:`+regexp.QuoteMeta(string(goVer[1]))+`\b`, string(df))
	assert.Contains(t, string(df), `CMD ["serve", "--config", "/etc/anfed/anfed.yaml"]`)
	assert.Contains(t, string(df), "USER 65532:65532")
}
