package config

import "time"

// Defaults of what a peer's policy may leave out, and of the link, in one
// place (flap dampening's are beside Dampening).
const (
	// DefaultImportMaxRate is import.max_rate when the policy sets none;
	// the burst is then two seconds' worth.
	DefaultImportMaxRate = 1000.0
	// DefaultGrace is import.grace: how long a peer's link may be down
	// before its conditions go stale.
	DefaultGrace = Duration(30 * time.Second)
	// DefaultWithdrawAfter is import.withdraw_after: how long stale
	// conditions stay before they are withdrawn.
	DefaultWithdrawAfter = Duration(5 * time.Minute)
	// DefaultLinkWindow is how many signals a sender keeps in flight to a
	// peer, and its export consumer's MaxAckPending.
	DefaultLinkWindow = 512
	// DefaultAdjRibInLimit is import.adj_rib_in.limit: the most
	// conditions of a peer whose signal refused by import policy is
	// kept for a later, wider policy.
	DefaultAdjRibInLimit = 1024
)

// RibInLimit is import.adj_rib_in.limit, the default applied.
func (p ImportPolicy) RibInLimit() int {
	if p.AdjRibIn == nil || p.AdjRibIn.Limit <= 0 {
		return DefaultAdjRibInLimit
	}
	return p.AdjRibIn.Limit
}

// RateLimit is the import rate limit in signals per second and its burst,
// defaults applied.
func (p ImportPolicy) RateLimit() (rate float64, burst int) {
	rate, burst = p.MaxRate, p.MaxBurst
	if rate <= 0 {
		rate = DefaultImportMaxRate
	}
	if burst <= 0 {
		burst = max(int(2*rate), 1)
	}
	return rate, burst
}

// Timers are import.grace and import.withdraw_after, defaults applied.
func (p ImportPolicy) Timers() (grace, withdrawAfter time.Duration) {
	grace, withdrawAfter = time.Duration(p.Grace), time.Duration(p.WithdrawAfter)
	if grace <= 0 {
		grace = time.Duration(DefaultGrace)
	}
	if withdrawAfter <= 0 {
		withdrawAfter = time.Duration(DefaultWithdrawAfter)
	}
	return grace, withdrawAfter
}

// Pacing is export.max_rate and its burst (one second's worth by
// default); rate 0: not paced.
func (e ExportPolicy) Pacing() (rate float64, burst int) {
	rate, burst = e.MaxRate, e.MaxBurst
	if rate <= 0 {
		return 0, 0
	}
	if burst <= 0 {
		burst = max(int(rate), 1)
	}
	return rate, burst
}
