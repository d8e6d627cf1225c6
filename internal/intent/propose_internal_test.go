package intent

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// actionID stays within the action class's pattern whatever the intent
// id (up to 128 of letters, digits, - and _), and keeps the time.
func TestActionIDFitsTheActionClass(t *testing.T) {
	pattern := regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$`)
	now := time.UnixMilli(1765094400123)
	for _, id := range []string{"acme-vpn-1", "acme_vpn_1", strings.Repeat("x", 128), strings.Repeat("_", 128)} {
		got := actionID("op-b", "rate-limit", id, now)
		assert.Regexp(t, pattern, got, id)
		assert.True(t, strings.HasSuffix(got, "-1765094400123"), got)
	}
	assert.Equal(t, "op-b-reroute-acme-vpn-1-1765094400123", actionID("op-b", "reroute", "acme_vpn-1", now))
}
