package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/audit"
	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/coordination"
	"github.com/anfed/anfed/internal/natstest"
	"github.com/anfed/anfed/internal/node"
)

// A person on op-a sees op-b's drain proposal pending in /v1/actions and
// declines it with a POST; op-b hears the decline with its reason.
func TestActionsAPI(t *testing.T) {
	tok := writeToken(t, "tok-actions-0123456789")
	a, b := drainPair(t, tok)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := proposeDrain(t, ctx, b, "b-drain-http")
	natstest.WaitFor(t, 10*time.Second, func() error {
		code, body := get(t, a.url+"/v1/actions")
		if code != http.StatusOK || !strings.Contains(body, `"pending": true`) {
			return fmt.Errorf("%d %s", code, body)
		}
		return nil
	})
	var v node.ActionsView
	_, body := get(t, a.url+"/v1/actions")
	require.NoError(t, json.Unmarshal([]byte(body), &v))
	require.Len(t, v.Actions, 1)
	assert.Equal(t, "coordination.require_human[0]", v.Actions[0].PendingRule)

	post := func(path, token, body string) (int, string) {
		req, err := http.NewRequest(http.MethodPost, a.url+path, strings.NewReader(body))
		require.NoError(t, err)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		var m map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&m)
		b, _ := json.Marshal(m)
		return resp.StatusCode, string(b)
	}
	code, _ := post("/v1/actions/b-drain-http/decline", "", "")
	assert.Equal(t, http.StatusUnauthorized, code, "deciding takes the token")
	code, _ = post("/v1/actions/b-drain-http/maybe", "tok-actions-0123456789", "")
	assert.Equal(t, http.StatusNotFound, code)
	code, resp := post("/v1/actions/b-drain-http/decline", "tok-actions-0123456789", `{"reason":"not during the freeze","by":"noc-alice"}`)
	require.Equal(t, http.StatusOK, code, resp)
	act := <-done
	d := act.Decisions["op-a"]
	assert.Equal(t, coordination.Declined, d.Phase)
	assert.Equal(t, "not during the freeze", d.Reason)
	assert.Equal(t, "noc-alice", d.DecidedBy)
	code, resp = post("/v1/actions/b-drain-http/accept", "tok-actions-0123456789", "")
	assert.Equal(t, http.StatusConflict, code, "decided already: %s", resp)
	// the action's trace: op-b's proposal and op-a's decline
	code, body = get(t, a.url+"/v1/trace/b-drain-http")
	require.Equal(t, http.StatusOK, code, body)
	assert.Contains(t, body, `"class": "action"`)
	assert.Contains(t, body, `"origin": "op-b"`)
	assert.Contains(t, body, `"origin": "op-a"`)
	code, _ = get(t, a.url+"/v1/trace/no-such-signal")
	assert.Equal(t, http.StatusNotFound, code)
	// op-b's view has the action and op-a's decline too
	natstest.WaitFor(t, 10*time.Second, func() error {
		code, body := get(t, b.url+"/v1/actions")
		if code != http.StatusOK || !strings.Contains(body, "not during the freeze") {
			return fmt.Errorf("%d %s", code, body)
		}
		return nil
	})
	// op-a's audit trail: the proposal and noc-alice's decline, as JSON
	// Lines; what op-a sent op-b (its decline) with its digest
	natstest.WaitFor(t, 10*time.Second, func() error {
		code, body := get(t, a.url+"/v1/audit?peer=op-a&kind=action")
		if code != http.StatusOK || !strings.Contains(body, `"decided_by":"noc-alice"`) {
			return fmt.Errorf("%d %s", code, body)
		}
		lines := strings.Split(strings.TrimSpace(body), "\n")
		var r audit.Record
		if err := json.Unmarshal([]byte(lines[len(lines)-1]), &r); err != nil {
			return err
		}
		if r.Action != "b-drain-http" || r.Phase != "declined" || r.Reason != "not during the freeze" || r.Rule != "human" {
			return fmt.Errorf("%+v", r)
		}
		return nil
	})
	code, body = get(t, a.url+"/v1/audit?peer=op-b&kind=sent")
	require.Equal(t, http.StatusOK, code, body)
	assert.Contains(t, body, `"digest":"sha256:`)
	code, body = get(t, a.url+"/v1/audit/verify")
	require.Equal(t, http.StatusOK, code, body)
	assert.Contains(t, body, `"ok": true`)
	code, body = get(t, a.url+"/v1/audit?since=yesterday")
	assert.Equal(t, http.StatusBadRequest, code, body)
	assert.Contains(t, body, "RFC 3339")
}

// drainPair is pair with actions crossing both ways: op-a (with the
// ingest token in tokenA) leaves drains to a person, op-b proposes.
func drainPair(t *testing.T, tokenA string) (a, b *served) {
	t.Helper()
	withAction := func(c *config.Config) { c.Peers[0].Import.Classes = append(c.Peers[0].Import.Classes, "action") }
	a, b, _ = pairEdits(t, tokenA, func(c *config.Config) {
		withAction(c)
		c.Coordination = &config.Coordination{RequireHuman: []config.CoordinationRule{{Kinds: []string{"drain"}}}}
	}, func(c *config.Config) {
		withAction(c)
		c.Coordination = &config.Coordination{}
	})
	return a, b
}

// proposeDrain has op-b propose drain id of ic-paris-1 to op-a and
// returns where the action arrives once op-a decided.
func proposeDrain(t *testing.T, ctx context.Context, b *served, id string) <-chan *coordination.Action {
	done := make(chan *coordination.Action, 1)
	go func() {
		act, err := coordination.NewClient(b.nc, "op-b", "closed-loop").Propose(ctx, coordination.Proposal{ActionID: id, Kind: "drain",
			Resources: []coordination.Resource{{ID: "ic-paris-1", Type: "interconnect"}}, Services: []string{"vpn-acme"}, Affected: []string{"op-a"},
			Causes: []coordination.Cause{{Source: "anfed://op-a/assurance", ID: "c-1", Class: "congestion"}}, ExpectedEffect: "drain ic-paris-1", Duration: 10 * time.Minute})
		assert.NoError(t, err)
		done <- act
	}()
	return done
}
