package config

import (
	"time"
)

// Audit is the audit trail (docs/coordination.md#audit-trail): a
// hash-chained record of every signal copy sent to a peer and every
// action step, kept in the ANFED_AUDIT stream within storage.max_bytes.
type Audit struct {
	// Off: no record is kept (and `anfed audit` finds none). The trail
	// is on by default.
	Off bool `yaml:"off,omitempty"`
	// MaxAge is how long a record is kept. Default 2160h (90 days).
	MaxAge Duration `yaml:"max_age,omitempty"`
}

// DefaultAuditMaxAge is audit.max_age's default: 90 days.
const DefaultAuditMaxAge = Duration(90 * 24 * time.Hour)

// Retention is audit.max_age, its default applied.
func (a Audit) Retention() time.Duration {
	if a.MaxAge <= 0 {
		return time.Duration(DefaultAuditMaxAge)
	}
	return time.Duration(a.MaxAge)
}

func (c *checker) audit(a Audit) {
	if a.MaxAge < 0 || a.MaxAge == 0 && c.given("audit.max_age") {
		c.add("audit.max_age", "how long records are kept, such as 2160h (90 days, the default); leave it out for the default", "must be greater than zero")
	}
}
