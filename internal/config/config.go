package config

import (
	"fmt"
	"path/filepath"
	"reflect"

	"github.com/anfed/anfed/internal/boundedfile"
)

// MaxPolicySize bounds a policy file: a real one is a few kilobytes, a
// hundred peers a few hundred. A larger file is refused before it is
// parsed.
const MaxPolicySize = 1 << 20

// MaxProblems bounds the problems reported for one file: past it, one
// more line says how many were left out.
const MaxProblems = 100

const policySizeHint = "a policy is a few kilobytes: check that this is the policy file, not a log or a data file"

// ReadPolicy reads the policy file at path: a regular file of at most
// MaxPolicySize bytes.
func ReadPolicy(path string) ([]byte, error) {
	data, err := boundedfile.Read(path, MaxPolicySize)
	if err != nil {
		return nil, fmt.Errorf("load policy: %w", err)
	}
	return data, nil
}

// Load reads and checks the policy file at path. On any problem in the
// file it returns an Errors holding every problem found, each with file,
// line and column. Relative storage.dir is resolved against the file's
// directory. The files the policy names are checked by CheckFiles.
func Load(path string) (*Config, error) {
	data, err := ReadPolicy(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data)
}

// Parse is Load on bytes; name is used in error messages and its directory
// as the base of relative paths.
func Parse(name string, data []byte) (*Config, error) {
	cfg, errs, _ := Check(name, data)
	if len(errs) > 0 {
		return nil, errs
	}
	return cfg, nil
}

// Check is Parse for tools (`anfed policy check`): it returns the config
// when the file has no problem, and otherwise every problem found together
// with the warnings, each sorted by line. A file that does not parse as
// YAML has no warnings.
func Check(name string, data []byte) (*Config, Errors, []*Error) {
	return check(name, data, false)
}

// CheckAll is Check, and then every file the policy names is read and
// checked (CheckFiles): a key, token, certificate or CA that is missing,
// not a regular file, too large or unreadable as what it should be is a
// problem at the line of the key that names it; a secret that others may
// read is a warning. It is what `anfed validate` and `anfed serve` run.
func CheckAll(name string, data []byte) (*Config, Errors, []*Error) {
	return check(name, data, true)
}

// LoadAll is Load with CheckAll.
func LoadAll(path string) (*Config, error) {
	data, err := ReadPolicy(path)
	if err != nil {
		return nil, err
	}
	cfg, errs, _ := CheckAll(path, data)
	if len(errs) > 0 {
		return nil, errs
	}
	return cfg, nil
}

func check(name string, data []byte, files bool) (cfg *Config, errs Errors, warnings []*Error) {
	if len(data) > MaxPolicySize {
		return nil, Errors{{File: name, Msg: fmt.Sprintf("the file is %s, over the limit of %s for a policy", boundedfile.Size(int64(len(data))), boundedfile.Size(MaxPolicySize)), Hint: policySizeHint}}, nil
	}
	root, perrs := parseNode(name, data)
	if perrs != nil {
		return nil, capProblems(name, perrs), nil
	}
	if root == nil {
		return nil, Errors{{File: name, Msg: "the file is empty", Hint: "a policy needs at least operator.id and storage.dir"}}, nil
	}
	defer func() { errs = capProblems(name, errs) }()
	cfg = &Config{File: name}
	d := &decoder{file: name}
	d.decode(root, reflect.ValueOf(cfg).Elem(), "")

	given := func(path string) bool {
		n, ok := nodeAt(root, path, &d.merges)
		return ok && !isNull(n)
	}
	if !given("nats.client") && !given("nats.external") {
		cfg.NATS.Client.Listen = defaultClientListen
	}
	if !given("http.listen") {
		cfg.HTTP.Listen = DefaultHTTPListen
	}
	problems, warnings := cfg.check(given)
	warnings = capProblems(name, warnings)
	locate := func(e *Error) {
		e.File = name
		if n, _ := nodeAt(root, e.Path, &d.merges); n != nil {
			e.Line, e.Column = n.Line, n.Column
		}
	}
	errs = d.errs
	covered := d.covered()
	for _, e := range problems {
		// A value that did not decode is already reported; its zero value
		// would only add noise ("required").
		if !covered(e.Path) {
			locate(e)
			errs = append(errs, e)
		}
	}
	for _, w := range warnings {
		locate(w)
	}
	if len(errs) == 0 && files {
		// On the config as the node reads it: absolute paths.
		read := *cfg
		read.Storage = read.Storage.withDefaults()
		read.resolvePaths(filepath.Dir(name))
		ferrs, fwarns := read.checkFiles(policyMode(name))
		for _, e := range ferrs {
			locate(e)
			errs = append(errs, e)
		}
		for _, w := range fwarns {
			locate(w)
			warnings = append(warnings, w)
		}
	}
	Errors(warnings).sort()
	if len(errs) > 0 {
		errs.sort()
		return nil, errs, warnings
	}
	cfg.warnings = warnings

	cfg.Storage = cfg.Storage.withDefaults()
	cfg.resolvePaths(filepath.Dir(name))
	return cfg, nil, warnings
}

// capProblems keeps the first MaxProblems of es and says how many more
// there were.
func capProblems[E ~[]*Error](name string, es E) E {
	if len(es) <= MaxProblems {
		return es
	}
	more := len(es) - MaxProblems
	return append(es[:MaxProblems:MaxProblems], &Error{File: name, Msg: fmt.Sprintf("%d more not shown", more),
		Hint: "fix the ones above first: a file this far from a policy is often not a policy at all"})
}

// Validate runs the semantic checks of Parse on a config built in code.
// Zero storage limits stand for their defaults. The errors carry no line.
func (c *Config) Validate() error {
	errs, _ := c.check(nil)
	if len(errs) == 0 {
		return nil
	}
	for _, e := range errs {
		e.File = c.File
	}
	return errs
}

// Warnings returns the problems that do not stop the node, such as a peer
// that is exported nothing. For a loaded config they carry the lines found
// at load time.
func (c *Config) Warnings() []*Error {
	if c.warnings != nil {
		return c.warnings
	}
	_, warnings := c.check(nil)
	for _, w := range warnings {
		w.File = c.File
	}
	return warnings
}

// Peer returns the peer with the given id.
func (c *Config) Peer(id string) (*Peer, bool) {
	for i := range c.Peers {
		if c.Peers[i].ID == id {
			return &c.Peers[i], true
		}
	}
	return nil, false
}
