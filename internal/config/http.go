package config

import (
	"fmt"
	"net"
	"strings"

	"github.com/anfed/anfed/internal/boundedfile"
)

// DefaultHTTPListen is where a node serves HTTP when its policy file has
// no http.listen: loopback only.
const DefaultHTTPListen = "127.0.0.1:8440"

// MinTokenLen is the shortest bearer token the CloudEvents ingest takes.
const MinTokenLen = 16

const tokenHint = "write a random token of at least 16 characters to the file, e.g. `openssl rand -base64 32 > ingest.token`, and keep it readable only by the node (chmod 600)"

// http checks the http section: a valid address, and a token file that
// holds a usable token.
func (c *checker) http(cfg *Config) {
	h := cfg.HTTP
	if h.Listen != "" && c.listen("http.listen", h.Listen) {
		host, _, _ := net.SplitHostPort(h.Listen)
		if !loopback(host) {
			c.warn("http.listen", `keep it on loopback ("127.0.0.1:8440") and put an authenticating proxy in front to reach it from elsewhere`,
				"%q is reachable from other machines: /metrics, the JSON API and the dashboard answer without a token", h.Listen)
		}
	}
	for _, f := range []struct{ key, file string }{{"http.token_file", h.TokenFile}, {"http.admin_token_file", h.AdminTokenFile}} {
		if f.file == "" {
			continue
		}
		if h.Listen == "" {
			c.warn(f.key, `set http.listen, or remove `+f.key, "unused: http.listen is empty, so there is no HTTP server")
		}
		if _, err := ReadToken(relPath(cfg, f.file)); err != nil {
			c.add(f.key, tokenHint, "%v", err)
		}
	}
	if h.TokenFile != "" && h.AdminTokenFile != "" {
		a, errA := ReadToken(relPath(cfg, h.TokenFile))
		b, errB := ReadToken(relPath(cfg, h.AdminTokenFile))
		if errA == nil && errB == nil && a == b {
			c.add("http.admin_token_file", "make a token of its own: `openssl rand -base64 32 > admin.token`",
				"holds the same token as http.token_file: producers, who hold the ingest's token, could reload the node or disable its peers")
		}
	}
}

// ReadToken reads a bearer token file: one token, surrounding white space
// ignored.
func ReadToken(path string) (string, error) {
	b, err := boundedfile.Read(path, boundedfile.MaxSize)
	if err != nil {
		return "", fmt.Errorf("cannot read the token file: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	switch {
	case tok == "":
		return "", fmt.Errorf("token file %s is empty", path)
	case len(tok) < MinTokenLen:
		return "", fmt.Errorf("the token in %s is %d characters: want at least %d", path, len(tok), MinTokenLen)
	case strings.ContainsAny(tok, " \t\r\n"):
		return "", fmt.Errorf("the token in %s holds white space: want one token on one line", path)
	}
	return tok, nil
}
