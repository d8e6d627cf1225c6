package natsconf

import (
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The build refuses a vulnerable nats-server: this test fails CI when
// go.mod pins one older than MinServerVersion.
func TestEmbeddedServerVersionGate(t *testing.T) {
	require.NoError(t, CheckServerVersion(server.VERSION), "go.mod pins nats-server %s", server.VERSION)
}

func TestCheckServerVersion(t *testing.T) {
	for v, ok := range map[string]bool{
		"2.14.3": true, "2.14.4": true, "2.15.0": true, "3.0.0": true, "v2.14.3": true, "2.15.0-beta.1": true,
		"2.14.2": false, "2.13.9": false, "2.9.25": false, "1.99.99": false,
	} {
		err := CheckServerVersion(v)
		if ok {
			assert.NoError(t, err, v)
		} else {
			assert.ErrorContains(t, err, "older than 2.14.3", v)
		}
	}
	assert.ErrorContains(t, CheckServerVersion("2.x"), "MAJOR.MINOR.PATCH")
}

func TestCheckSecurity(t *testing.T) {
	leaf := server.LeafNodeOpts{Port: 7422}
	assert.NoError(t, CheckSecurity(&server.Options{}), "nothing reachable")
	assert.ErrorContains(t, CheckSecurity(&server.Options{LeafNode: leaf, NoAuthUser: "guest", Users: []*server.User{{Username: "guest"}}}), "no_auth_user")
	assert.ErrorContains(t, CheckSecurity(&server.Options{LeafNode: leaf}), "must define users")
	assert.ErrorContains(t, CheckSecurity(&server.Options{Cluster: server.ClusterOpts{Port: 6222}}), "must define users")
	assert.NoError(t, CheckSecurity(&server.Options{LeafNode: leaf, Users: []*server.User{{Username: "u", Password: "p"}}}))
}
