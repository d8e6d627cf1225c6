package peering

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"time"

	"github.com/nats-io/nkeys"
	"go.yaml.in/yaml/v3"

	"github.com/anfed/anfed/internal/boundedfile"
	"github.com/anfed/anfed/internal/config"
)

// Policy is a policy file opened for editing. Edits are made on the
// file's YAML tree, and the file is written back with its own text
// wherever the edit did not touch it: comments, blank lines and the
// alignment of end-of-line comments survive (preserve). New entries are
// written with a 2-space indent.
type Policy struct {
	File string

	orig []byte
	base []byte // orig as yaml.v3 encodes it
	mode fs.FileMode
	doc  *yaml.Node // the document node
}

// OpenPolicy reads the policy file at path for editing.
func OpenPolicy(path string) (*Policy, error) {
	data, err := boundedfile.Read(path, config.MaxPolicySize)
	if err != nil {
		return nil, fmt.Errorf("open policy: %w", err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("open policy: %w", err)
	}
	doc, err := parseDoc(path, data)
	if err != nil {
		return nil, err
	}
	base, err := encode(doc)
	if err != nil {
		return nil, err
	}
	return &Policy{File: path, orig: data, base: base, mode: fi.Mode().Perm(), doc: doc}, nil
}

func parseDoc(path string, data []byte) (*yaml.Node, error) {
	var doc yaml.Node
	err := yaml.Unmarshal(data, &doc)
	if err == nil {
		// A node tree keeps what values refuse, such as a key defined
		// twice: an edit would write that back, still broken.
		var v any
		err = yaml.Unmarshal(data, &v)
	}
	if err != nil {
		// config.Parse says where, with the line.
		if _, perr := config.Parse(path, data); perr != nil {
			return nil, perr
		}
		return nil, fmt.Errorf("policy %s: %w", path, err)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, fmt.Errorf("policy %s: want a YAML mapping with operator, storage and peers", path)
	}
	return &doc, nil
}

func (p *Policy) root() *yaml.Node { return p.doc.Content[0] }

// Bytes returns the policy as it would be written.
func (p *Policy) Bytes() ([]byte, error) {
	edited, err := encode(p.doc)
	if err != nil {
		return nil, err
	}
	return preserve(p.orig, p.base, edited), nil
}

func encode(doc *yaml.Node) ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		return nil, fmt.Errorf("encode policy: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("encode policy: %w", err)
	}
	return buf.Bytes(), nil
}

var pendingPath = regexp.MustCompile(`^peers\[(\d+)\]\.signing_key$`)

// Load checks the policy as it stands, as config.Parse does. A peering
// is made in two steps, so a peer whose signing key is not pinned yet
// (signing_key empty) does not fail it: such peers are returned in
// pending, with an empty SigningKey in cfg. Any other problem fails it,
// with config.Errors. The node itself refuses to start until every key
// is pinned.
func (p *Policy) Load() (cfg *config.Config, pending []string, err error) {
	data, err := p.Bytes()
	if err != nil {
		return nil, nil, err
	}
	cfg, err = config.Parse(p.File, data)
	if err == nil {
		return cfg, nil, nil
	}
	var errs config.Errors
	if !errors.As(err, &errs) {
		return nil, nil, err
	}
	var others config.Errors
	var idx []int
	for _, e := range errs {
		m := pendingPath.FindStringSubmatch(e.Path)
		if m == nil || e.Msg != "required" {
			others = append(others, e)
			continue
		}
		i, _ := strconv.Atoi(m[1])
		idx = append(idx, i)
	}
	if len(others) > 0 {
		return nil, nil, others
	}
	// Parse once more with stand-in keys for the pending peers, so that
	// the caller gets the whole config, defaults and paths resolved.
	doc, err := parseDoc(p.File, data)
	if err != nil {
		return nil, nil, err
	}
	peers := lookup(doc.Content[0], "peers")
	for _, i := range idx {
		kp, err := nkeys.CreateOperator()
		if err != nil {
			return nil, nil, fmt.Errorf("load policy: %w", err)
		}
		pub, _ := kp.PublicKey()
		setKey(resolve(peers.Content[i]), "signing_key", str(pub))
		pending = append(pending, idString(resolve(peers.Content[i])))
	}
	data, err = encode(doc)
	if err != nil {
		return nil, nil, err
	}
	if cfg, err = config.Parse(p.File, data); err != nil {
		return nil, nil, err
	}
	for _, i := range idx {
		cfg.Peers[i].SigningKey = ""
	}
	return cfg, pending, nil
}

// Save checks the edited policy with Load and, when it holds no problem
// but pending keys, writes it back in place of the file. It refuses if
// the file changed since it was opened.
func (p *Policy) Save() (pending []string, err error) {
	if _, pending, err = p.Load(); err != nil {
		return nil, err
	}
	data, err := p.Bytes()
	if err != nil {
		return nil, err
	}
	now, err := boundedfile.Read(p.File, config.MaxPolicySize)
	if err != nil {
		return nil, fmt.Errorf("save policy: %w", err)
	}
	if !bytes.Equal(now, p.orig) {
		return nil, fmt.Errorf("save policy %s: the file changed since it was read; run the command again", p.File)
	}
	tmp, err := os.CreateTemp(filepath.Dir(p.File), "."+filepath.Base(p.File)+".*")
	if err != nil {
		return nil, fmt.Errorf("save policy: %w", err)
	}
	defer os.Remove(tmp.Name()) // after the rename, there is nothing left to remove
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("save policy %s: %w", p.File, err)
	}
	mode := p.mode
	if holdsPassword(p.root()) {
		// Leaf and local passwords: the owner's alone, whatever the
		// file's mode was.
		mode &^= 0o077
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("save policy %s: %w", p.File, err)
	}
	if err := tmp.Close(); err != nil {
		return nil, fmt.Errorf("save policy %s: %w", p.File, err)
	}
	if err := os.Rename(tmp.Name(), p.File); err != nil {
		return nil, fmt.Errorf("save policy: %w", err)
	}
	p.orig, p.mode = data, mode
	if p.base, err = encode(p.doc); err != nil {
		return nil, err
	}
	return pending, nil
}

// holdsPassword reports whether the policy holds a password: a local
// user's (nats.users) or a peer's leaf credentials (accept, dial).
func holdsPassword(root *yaml.Node) bool {
	has := func(m *yaml.Node) bool {
		v := lookup(m, "password")
		return v != nil && v.Kind == yaml.ScalarNode && v.Value != ""
	}
	if users := lookup(lookup(root, "nats"), "users"); users != nil && users.Kind == yaml.SequenceNode {
		for _, u := range users.Content {
			if has(u) {
				return true
			}
		}
	}
	if peers := lookup(root, "peers"); peers != nil && peers.Kind == yaml.SequenceNode {
		for _, pe := range peers.Content {
			if has(lookup(pe, "accept")) || has(lookup(pe, "dial")) {
				return true
			}
		}
	}
	return false
}

// OperatorID returns operator.id as written in the file.
func (p *Policy) OperatorID() string {
	if op := lookup(p.root(), "operator"); op != nil && op.Kind == yaml.MappingNode {
		if id := lookup(op, "id"); id != nil && id.Kind == yaml.ScalarNode {
			return id.Value
		}
	}
	return ""
}

// peer returns the mapping of the peer with id, or nil.
func (p *Policy) peer(id string) *yaml.Node {
	seq := lookup(p.root(), "peers")
	if seq == nil || seq.Kind != yaml.SequenceNode {
		return nil
	}
	for _, item := range seq.Content {
		if m := resolve(item); m.Kind == yaml.MappingNode && idString(m) == id {
			return m
		}
	}
	return nil
}

// HasPeer reports whether the policy lists peer id, and whether we accept
// it (it dials us).
func (p *Policy) HasPeer(id string) (exists, accept bool) {
	m := p.peer(id)
	if m == nil {
		return false, false
	}
	a := lookup(m, "accept")
	return true, a != nil && a.Kind == yaml.MappingNode
}

// appendPeer adds m at the end of the peers list, making the list if the
// file has none.
func (p *Policy) appendPeer(m *yaml.Node) {
	seq := lookup(p.root(), "peers")
	if seq == nil || seq.Kind != yaml.SequenceNode {
		seq = &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
		setKey(p.root(), "peers", seq)
	}
	seq.Style &^= yaml.FlowStyle
	seq.Content = append(seq.Content, m)
}

// AddInvited adds peer b.Peer, whom we accept with the credentials in b:
// the peer entry that `anfed peer invite` writes, with the display name
// name (the id when ""). Its export and import lists are empty
// (default-deny) for the operator to fill. signingKey is the peer's
// public key if already known, else "" until it is pinned.
func (p *Policy) AddInvited(b *Bundle, name, signingKey string) error {
	if exists, _ := p.HasPeer(b.Peer); exists {
		return fmt.Errorf("peer %s is already in %s", b.Peer, p.File)
	}
	if name == "" {
		name = b.Peer
	}
	m := mapping()
	setKey(m, "id", str(b.Peer))
	setKey(m, "name", str(name))
	accept := mapping()
	setKey(accept, "user", str(b.User))
	setKey(accept, "password", str(b.Password))
	setKey(m, "accept", accept)
	comment(m, "accept", fmt.Sprintf("Credentials we issued to %s (anfed peer invite, %s): it dials our leaf listener.", b.Peer, today()))
	addPolicyLists(m)
	key := str(signingKey)
	if signingKey == "" {
		key.LineComment = fmt.Sprintf("paste the O... key from %s (`anfed keys show` on its side), or: anfed peer pin --config %s %s KEY",
			b.Peer, filepath.Base(p.File), b.Peer)
	}
	setKey(m, "signing_key", key)
	if b.Expires != nil {
		setKey(m, "expires", timestamp(*b.Expires))
	}
	p.appendPeer(m)
	return nil
}

// AddDialing adds peer b.Issuer, which issued b to us: we dial it with
// the credentials in b and the files of tls (CA: trusts its listener's
// certificate; Cert and Key: our client certificate; none when ""), and
// pin its signing key. Its export and import lists are empty
// (default-deny) for the operator to fill.
func (p *Policy) AddDialing(b *Bundle, tls config.TLS) error {
	if exists, _ := p.HasPeer(b.Issuer); exists {
		return fmt.Errorf("peer %s is already in %s", b.Issuer, p.File)
	}
	m := mapping()
	setKey(m, "id", str(b.Issuer))
	if b.IssuerName != "" {
		setKey(m, "name", str(b.IssuerName))
	}
	dial := mapping()
	setKey(dial, "url", str(b.LeafURL))
	setKey(dial, "user", str(b.User))
	setKey(dial, "password", str(b.Password))
	if tls != (config.TLS{}) {
		t := mapping()
		for _, f := range []struct{ key, file string }{{"ca", tls.CA}, {"cert", tls.Cert}, {"key", tls.Key}} {
			if f.file != "" {
				setKey(t, f.key, str(f.file))
			}
		}
		setKey(dial, "tls", t)
	}
	setKey(m, "dial", dial)
	comment(m, "dial", fmt.Sprintf("Credentials %s issued to us (anfed peer add, %s).", b.Issuer, today()))
	addPolicyLists(m)
	setKey(m, "signing_key", str(b.SigningKey))
	comment(m, "signing_key", fmt.Sprintf("%s's public signing key, from its bundle.", b.Issuer))
	if b.Expires != nil {
		setKey(m, "expires", timestamp(*b.Expires))
	}
	p.appendPeer(m)
	return nil
}

// Pin sets the signing key of peer id and returns the key it replaces.
func (p *Policy) Pin(id, key string) (old string, err error) {
	m := p.peer(id)
	if m == nil {
		return "", fmt.Errorf("no peer %s in %s", id, p.File)
	}
	if v := lookup(m, "signing_key"); v != nil && v.Kind == yaml.ScalarNode {
		old = v.Value
	}
	setKey(m, "signing_key", str(key))
	return old, nil
}

// SetDisabled holds peer id administratively down for reason
// (peers[].disabled.reason), or brings it back with reason "". It returns
// the reason the peer was disabled for before ("" if it was not).
func (p *Policy) SetDisabled(id, reason string) (was string, err error) {
	m := p.peer(id)
	if m == nil {
		return "", fmt.Errorf("no peer %s in %s", id, p.File)
	}
	if d := lookup(m, "disabled"); d != nil {
		if r := lookup(d, "reason"); r != nil && r.Kind == yaml.ScalarNode {
			was = r.Value
		}
	}
	if reason == "" {
		for i := 0; i+1 < len(m.Content); i += 2 {
			if m.Content[i].Value == "disabled" {
				m.Content = append(m.Content[:i], m.Content[i+2:]...)
				break
			}
		}
		return was, nil
	}
	d := mapping()
	setKey(d, "reason", str(reason))
	setKey(m, "disabled", d)
	comment(m, "disabled", "Administratively down since "+time.Now().UTC().Format(time.RFC3339)+" (anfed peer disable); anfed peer enable brings it back.")
	return was, nil
}

// SetList sets the list key of the section ("export" or "import") of
// peer id to values, written as a flow list; the section is made if the
// peer has none. The caller checks the result with Load or Save.
func (p *Policy) SetList(id, section, key string, values []string) error {
	m := p.peer(id)
	if m == nil {
		return fmt.Errorf("no peer %s in %s", id, p.File)
	}
	sec := lookup(m, section)
	if sec == nil || sec.Kind != yaml.MappingNode {
		sec = mapping()
		setKey(m, section, sec)
	}
	list := emptyList()
	for _, v := range values {
		list.Content = append(list.Content, str(v))
	}
	if old := lookup(sec, key); old != nil {
		list.LineComment = old.LineComment
	}
	setKey(sec, key, list)
	return nil
}

func addPolicyLists(m *yaml.Node) {
	export := mapping()
	setKey(export, "classes", emptyList())
	setKey(export, "services", emptyList())
	setKey(m, "export", export)
	comment(m, "export", `Default-deny: list the classes (and services) that cross, "*" for all.`)
	imp := mapping()
	setKey(imp, "classes", emptyList())
	setKey(m, "import", imp)
}

func today() string { return time.Now().UTC().Format(time.DateOnly) }

func mapping() *yaml.Node { return &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"} }

func emptyList() *yaml.Node {
	return &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Style: yaml.FlowStyle}
}

// str is a string scalar; the encoder quotes it when it would otherwise
// read as another type, and an empty one is written "".
func str(v string) *yaml.Node {
	n := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: v}
	if v == "" {
		n.Style = yaml.DoubleQuotedStyle
	}
	return n
}

func timestamp(t time.Time) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!timestamp", Value: t.Format(time.RFC3339)}
}

func resolve(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

// lookup returns the value of key in mapping m, or nil.
func lookup(m *yaml.Node, key string) *yaml.Node {
	m = resolve(m)
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return resolve(m.Content[i+1])
		}
	}
	return nil
}

// setKey sets key in mapping m to v, in place if the key exists (keeping
// the key's comments), else at the end.
func setKey(m *yaml.Node, key string, v *yaml.Node) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			m.Content[i+1] = v
			return
		}
	}
	m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: key}, v)
}

// comment puts a comment line above key in mapping m.
func comment(m *yaml.Node, key, text string) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			m.Content[i].HeadComment = "# " + text
			return
		}
	}
}

func idString(m *yaml.Node) string {
	if id := lookup(m, "id"); id != nil && id.Kind == yaml.ScalarNode {
		return id.Value
	}
	return ""
}
