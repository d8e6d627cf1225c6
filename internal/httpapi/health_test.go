package httpapi_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/node"
)

func TestHealthAndReadiness(t *testing.T) {
	a, _, _ := pair(t)
	code, body := get(t, a.url+"/healthz")
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, "ok\n", body)
	code, body = get(t, a.url+"/readyz")
	assert.Equal(t, http.StatusOK, code, body)
	assert.Equal(t, "ready: nats up, jetstream up, store writable, intake answering, config loaded, 1 links configured\n", body)

	// On loopback, a request for another name is refused (DNS rebinding).
	req, err := http.NewRequest(http.MethodGet, a.url+"/v1/peers", nil)
	require.NoError(t, err)
	req.Host = "evil.example:8440"
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusMisdirectedRequest, resp.StatusCode)
	req.Host = "localhost"
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)

	// A node that is not started says what is missing.
	err = node.New(baseConfig(t, "op-z")).Readiness()
	if assert.Error(t, err) {
		for _, want := range []string{"nats: not started", "store: not open", "conditions: table not started"} {
			assert.True(t, strings.Contains(err.Error(), want), "%q lacks %q", err, want)
		}
	}
}
