package bridge

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/anfed/anfed/internal/config"
)

// Upstream registration backoff: from upstreamMin, doubling, capped at
// upstreamMax, with jitter.
const (
	upstreamMin = time.Second
	upstreamMax = time.Minute
)

// upstream keeps a hub registered with one OSS until ctx is done, then
// unregisters it (DELETE {url}/hub/{id}).
func (t *tmf642) upstream(ctx context.Context, u config.TMF642Upstream) {
	log := t.b.log.With().Str("upstream", u.URL).Logger()
	gauge := t.b.metrics.upstream.WithLabelValues(u.URL)
	gauge.Set(0)
	var token string
	if u.TokenFile != "" {
		tok, err := config.ReadToken(u.TokenFile)
		if err != nil {
			log.Error().Err(err).Msg("tmf642 upstream: token_file; not registering")
			return
		}
		token = tok
	}
	wait := upstreamMin
	for {
		id, err := t.registerUpstream(ctx, u, token)
		if err == nil {
			gauge.Set(1)
			log.Info().Str("id", id).Msg("tmf642 upstream: hub registered")
			<-ctx.Done()
			t.unregisterUpstream(u, token, id, log.Warn)
			gauge.Set(0)
			return
		}
		d := wait/2 + rand.N(wait/2+1)
		log.Warn().Err(err).Stringer("retry_in", d).Msg("tmf642 upstream: hub registration failed; retrying")
		select {
		case <-ctx.Done():
			return
		case <-time.After(d):
		}
		wait = min(2*wait, upstreamMax)
	}
}

func (t *tmf642) callback() string {
	if t.cfg.Callback != "" {
		return t.cfg.Callback
	}
	return strings.TrimSuffix(t.b.d.BaseURL(), "/") + TMF642Base
}

func (t *tmf642) registerUpstream(ctx context.Context, u config.TMF642Upstream, token string) (string, error) {
	body, _ := json.Marshal(map[string]string{"callback": t.callback(), "query": u.Query})
	rctx, cancel := context.WithTimeout(ctx, time.Duration(t.delivery.Timeout))
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, strings.TrimSuffix(u.URL, "/")+"/hub", bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := t.client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("POST %s: %s: %s", req.URL, resp.Status, bytes.TrimSpace(b))
	}
	var hub struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(b, &hub); err != nil || hub.ID == "" {
		return "", fmt.Errorf("POST %s: the answer names no hub id: %s", req.URL, bytes.TrimSpace(b))
	}
	return hub.ID, nil
}

func (t *tmf642) unregisterUpstream(u config.TMF642Upstream, token, id string, warn func() *zerolog.Event) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, strings.TrimSuffix(u.URL, "/")+"/hub/"+id, nil)
	if err != nil {
		return
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := t.client.Do(req)
	if err != nil {
		warn().Err(err).Str("id", id).Msg("tmf642 upstream: unregistering the hub")
		return
	}
	resp.Body.Close()
	if resp.StatusCode >= 300 && resp.StatusCode != http.StatusNotFound {
		warn().Str("status", resp.Status).Str("id", id).Msg("tmf642 upstream: unregistering the hub")
	}
}
