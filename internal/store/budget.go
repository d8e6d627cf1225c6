package store

import (
	"fmt"

	"github.com/anfed/anfed/internal/config"
)

// Caps of the smaller streams' shares of the budget.
const (
	// KVMaxBytes caps the key-value bucket the node keeps (the TMF642
	// hub's registrations).
	KVMaxBytes = 1 << 20
	// CoordMaxBytes caps the coordination bucket's (internal/coordination:
	// leases, the leases peers granted, the actions).
	CoordMaxBytes = 1 << 20
	// IntentsMaxBytes caps the intents' bucket's (internal/intent: the
	// intents owned and handled, and their reports).
	IntentsMaxBytes = 1 << 20
	// ProbeMaxBytes caps the probe stream's: the one message the
	// readiness probe writes.
	ProbeMaxBytes = 64 << 10
	// KeysMaxBytes caps the signing-key rotations' bucket (KeysBucket):
	// one record of a few hundred bytes per origin.
	KeysMaxBytes = 64 << 10
	// AuditMaxBytes caps the audit trail's stream (internal/audit).
	AuditMaxBytes = 1 << 30
	// AuditFullShareFrom: a smaller store gives the audit trail a
	// sixty-fourth instead of a sixteenth.
	AuditFullShareFrom = 64 << 20
)

// Budget is storage.max_bytes split between the streams. The embedded
// server's JetStream may hold no more than the whole (max_file_store), so
// the streams always fit in what the operator gave, and a volume smaller
// than that fills up as a full disk (answered unavailable, "store full").
type Budget struct {
	Total, Signals, DLQ, Held, KeyHeld, RibIn, KV, Coord, Intents, Probe, Keys, Audit int64
}

// Split splits total: dead letters and held signals an eighth each (up to
// 64 and 128 MiB; a quarter of the held share for KeyHeldStream and a
// quarter for RibInStream), the key-value bucket, the coordination bucket
// and the intents' bucket a sixteenth each (up to 1 MiB), the probe a
// sixty-fourth (up to 64 KiB), the key rotations' bucket a sixty-fourth
// (up to 64 KiB), the audit trail a sixteenth (a sixty-fourth below
// AuditFullShareFrom, up to 1 GiB), and the rest, more than half, for the signals.
func Split(total int64) (Budget, error) {
	if total < int64(config.MinStorageBytes) {
		return Budget{}, fmt.Errorf("storage.max_bytes %s is less than the minimum, %s (signals, dead letters, held signals and the node's own state share it): raise storage.max_bytes in the policy file",
			config.ByteSize(total), config.MinStorageBytes)
	}
	b := Budget{Total: total, DLQ: min(total/8, DLQMaxBytes), Held: min(total/8, HeldMaxBytes), KV: min(total/16, KVMaxBytes), Coord: min(total/16, CoordMaxBytes), Intents: min(total/16, IntentsMaxBytes), Probe: min(total/64, ProbeMaxBytes), Keys: min(total/64, KeysMaxBytes)}
	b.Audit = min(total/16, AuditMaxBytes)
	if total < AuditFullShareFrom {
		b.Audit = total / 64 // the signals keep more than half of a small store
	}
	// Signals held under an unpinned key (KeyHeldStream) take a quarter
	// of the held share, and so does what peers sent that import policy
	// refused (RibInStream, their Adj-RIB-In).
	b.KeyHeld = b.Held / 4
	b.RibIn = b.Held / 4
	b.Held -= b.KeyHeld + b.RibIn
	b.Signals = total - b.DLQ - b.Held - b.KeyHeld - b.RibIn - b.KV - b.Coord - b.Intents - b.Probe - b.Keys - b.Audit
	return b, nil
}
