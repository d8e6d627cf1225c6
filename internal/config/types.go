// Package config loads and checks a node's policy file: the one YAML file
// from which the node derives both its NATS configuration and its pipelines.
package config

import "time"

// Config is one node's policy file.
type Config struct {
	// File is the path the config was loaded from ("" when built in code).
	File string `yaml:"-"`

	Operator Operator `yaml:"operator"`
	NATS     NATS     `yaml:"nats"`
	Storage  Storage  `yaml:"storage"`
	Peers    []Peer   `yaml:"peers"`

	// warnings are the non-fatal problems found by Parse, with their lines.
	warnings []*Error
}

// Operator is this node's identity.
type Operator struct {
	// ID is the operator id used in subjects, account names, CloudEvent
	// sources and paths: ^[a-z][a-z0-9-]{0,31}$.
	ID   string `yaml:"id"`
	Name string `yaml:"name"`
}

// NATS describes the embedded NATS server.
type NATS struct {
	// Client is where local producers and consumers connect (operations
	// account). Listen "" means no TCP client listener (in-process only).
	Client Listener `yaml:"client"`
	// LeafNodes is where peers that dial us connect. nil: no leaf listener.
	LeafNodes *Listener `yaml:"leafnodes"`
	// Users are local users of the operations account.
	Users []User `yaml:"users"`
}

// Listener is a host:port to listen on. Port 0 picks a free port.
type Listener struct {
	Listen string `yaml:"listen"`
}

// User is a local user of the operations account.
type User struct {
	Name     string `yaml:"name"`
	Password string `yaml:"password"`
}

// Storage configures JetStream storage for accepted signals.
type Storage struct {
	// Dir holds JetStream's files. Required.
	Dir string `yaml:"dir"`
	// MaxAge bounds how long accepted signals are kept. Default 72h.
	MaxAge Duration `yaml:"max_age"`
	// MaxBytes bounds the signal stream's size. Default 1GiB.
	MaxBytes ByteSize `yaml:"max_bytes"`
	// DuplicateWindow is how long (source, id) pairs are remembered for
	// deduplication. Default 2m.
	DuplicateWindow Duration `yaml:"duplicate_window"`
}

// Peer is one neighbouring operator and the policy towards it.
type Peer struct {
	ID   string `yaml:"id"`
	Name string `yaml:"name"`
	// Exactly one of Accept and Dial is set.
	Accept *Accept      `yaml:"accept"`
	Dial   *Dial        `yaml:"dial"`
	Export ExportPolicy `yaml:"export"`
	Import ImportPolicy `yaml:"import"`
}

// Accept means the peer dials our leaf-node listener with credentials we
// issued to it.
type Accept struct {
	User     string `yaml:"user"`
	Password string `yaml:"password"`
}

// Dial means we dial the peer's leaf-node listener with credentials the peer
// issued to us.
type Dial struct {
	// URL is nats-leaf://host:port (or tls://host:port).
	URL      string `yaml:"url"`
	User     string `yaml:"user"`
	Password string `yaml:"password"`
}

// ExportPolicy decides which of our signals the peer receives.
// Allow-lists are default-deny: an empty list exports nothing; "*" means all.
type ExportPolicy struct {
	Classes  []string `yaml:"classes"`
	Services []string `yaml:"services"` // path.Match globs on the service token
	// Transit allows relaying signals whose origin is another operator.
	Transit bool `yaml:"transit"`
}

// ImportPolicy decides which signals we accept from the peer.
type ImportPolicy struct {
	Classes []string `yaml:"classes"` // default-deny; "*" means all
	// Transit accepts signals the peer relays from other origins; without
	// it the peer may send only signals whose origin is itself.
	Transit bool `yaml:"transit"`
}

// Duration is a time.Duration written as "90s", "5m", "72h".
type Duration time.Duration

// ByteSize is a size in bytes written as 1024, "512KiB", "64MiB", "1GiB", "1GB".
type ByteSize int64
