// Runs the closed loop against a real anfed node named by ANFED_URL,
// ANFED_USER, ANFED_PASSWORD and ANFED_OPERATOR (the node's operator id).
// `go test ./examples/closed-loop-node` starts such a node and runs this.
import { test } from "node:test";
import assert from "node:assert/strict";
import { connect, StringCodec } from "nats";
import { CloudEvent } from "cloudevents";
import { runLoop, STREAM } from "../closed-loop.js";

const env = {
  server: process.env.ANFED_URL,
  user: process.env.ANFED_USER,
  password: process.env.ANFED_PASSWORD,
  operator: process.env.ANFED_OPERATOR,
};
const skip = env.server ? false : "ANFED_URL is not set: run `go test ./examples/closed-loop-node`, which starts a node";
const sc = StringCodec();
const run = Date.now().toString(36); // ids and keys of this run

// publish sends a congestion signal as a local producer would and requires
// it accepted.
async function congestion(nc, id, res, state, util) {
  const ev = new CloudEvent({
    id: `${run}-${id}`,
    source: `anfed://${env.operator}/assurance`,
    type: "net.anfed.congestion.v1",
    subject: `vpn-${run}/${res}`,
    time: new Date().toISOString(),
    datacontenttype: "application/json",
    anfedorigin: env.operator,
    anfedstate: state,
    severitytext: "WARN",
    severitynumber: 13,
    data: {
      link: { id: res, kind: "interconnect", peer: "op-a" },
      direction: "egress",
      utilisationPercent: util,
      packetLossPercent: 0.5,
      queueDelayMs: 12,
      trafficClasses: ["AF41"],
    },
  });
  const m = await nc.request("an.pub", sc.encode(JSON.stringify(ev)), { timeout: 10_000 });
  const a = JSON.parse(sc.decode(m.data));
  assert.equal(a.status, "accepted", `${id}: ${a.reason} ${a.error}`);
}

async function waitFor(what, f, ms = 20_000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = f();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

// the loop's lines that describe a signal or an action, not comments
const signalLines = (lines) => lines.filter((l) => !l.startsWith("#"));

test("current state first, then live; acts on congestion; a restart resumes", { skip, timeout: 120_000 }, async () => {
  const nc = await connect({ servers: env.server, user: env.user, pass: env.password });
  try {
    await congestion(nc, "ic1-raised", "ic-1", "raised", 97);
    await congestion(nc, "ic2-raised", "ic-2", "raised", 90);
    await congestion(nc, "ic2-cleared", "ic-2", "cleared", 40);

    const filter = `an.sig.*.congestion.vpn-${run}.>`;
    const durable = `node-test-${run}`;
    const lines = [];
    let loop = await runLoop({ ...env, filter, durable, print: (l) => lines.push(l) });
    // Current state: the last signal of each key, in stream order; ic-1 is
    // congested and gets a mitigation.
    await waitFor("the current state and the action", () => signalLines(lines).length >= 3);
    assert.match(lines[0], /current state of .*: 2 condition keys, then live/);
    let got = signalLines(lines);
    assert.match(got[0], /^current .* congestion +raised .*\/ic-1 .*id=.*-ic1-raised$/);
    assert.match(got[1], /^act +mitigation raised .*\/ic-1: accepted$/);
    assert.match(got[2], /^current .* congestion +cleared \(not active\) .*\/ic-2 .*id=.*-ic2-cleared$/);

    // Live: under the bound nothing is done; the clear withdraws the reroute.
    await congestion(nc, "ic3-raised", "ic-3", "raised", 50);
    await congestion(nc, "ic1-cleared", "ic-1", "cleared", 30);
    await waitFor("the live signals", () => signalLines(lines).length >= 6);
    await new Promise((r) => setTimeout(r, 300)); // nothing more comes
    got = signalLines(lines);
    assert.equal(got.length, 6, got.join("\n"));
    assert.match(got[3], /^live .* raised .*\/ic-3 /);
    assert.match(got[4], /^live .* cleared \(not active\) .*\/ic-1 /);
    assert.match(got[5], /^act +mitigation cleared .*\/ic-1: accepted$/);
    await loop.stop();

    // The mitigations are on the node's stream, the clear last.
    const jsm = await nc.jetstreamManager();
    const last = await jsm.streams.getMessage(STREAM, {
      last_by_subj: `an.sig.${env.operator}.mitigation.vpn-${run}.ic-1`,
    });
    const mit = new CloudEvent(JSON.parse(sc.decode(last.data)));
    assert.equal(mit.anfedstate, "cleared");
    assert.equal(mit.causationid, `${run}-ic1-cleared`);
    assert.equal(mit.data.action, "reroute");
    assert.ok(mit.dssematerial, "signed by the node");

    // Restarted with the same durable, it resumes: only what is new.
    lines.length = 0;
    await congestion(nc, "ic4-raised", "ic-4", "raised", 60);
    loop = await runLoop({ ...env, filter, durable, print: (l) => lines.push(l) });
    await waitFor("the resumed signal", () => signalLines(lines).length >= 1);
    await new Promise((r) => setTimeout(r, 300));
    await loop.stop();
    assert.match(lines[0], /resuming/);
    got = signalLines(lines);
    assert.equal(got.length, 1, lines.join("\n"));
    assert.match(got[0], /^live .* raised .*\/ic-4 .*id=.*-ic4-raised$/);
    await jsm.consumers.delete(STREAM, durable);
  } finally {
    await nc.drain();
  }
});
