package natsconf_test

import (
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/natsconf"
)

// Signal streams flush every write unless the policy says otherwise.
func TestSyncPolicy(t *testing.T) {
	for sync, want := range map[string]func(*testing.T, *server.Options){
		"":       func(t *testing.T, o *server.Options) { assert.True(t, o.SyncAlways, "default: always") },
		"always": func(t *testing.T, o *server.Options) { assert.True(t, o.SyncAlways) },
		"2m": func(t *testing.T, o *server.Options) {
			assert.False(t, o.SyncAlways)
			assert.Equal(t, 2*time.Minute, o.SyncInterval)
		},
	} {
		t.Run("sync="+sync, func(t *testing.T) {
			cfg := &config.Config{Operator: config.Operator{ID: "op-a"}, Storage: config.Storage{Dir: t.TempDir(), Sync: sync}}
			sec, err := natsconf.NewSecrets(cfg)
			require.NoError(t, err)
			o := &server.Options{}
			require.NoError(t, o.ProcessConfigString(natsconf.Generate(cfg, sec)))
			want(t, o)
		})
	}
}
