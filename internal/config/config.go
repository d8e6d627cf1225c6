package config

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
)

// Load reads and checks the policy file at path. On any problem in the
// file it returns an Errors holding every problem found, each with file,
// line and column. Relative storage.dir is resolved against the file's
// directory.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load policy: %w", err)
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
	root, errs := parseNode(name, data)
	if errs != nil {
		return nil, errs, nil
	}
	if root == nil {
		return nil, Errors{{File: name, Msg: "the file is empty", Hint: "a policy needs at least operator.id and storage.dir"}}, nil
	}
	cfg := &Config{File: name}
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
