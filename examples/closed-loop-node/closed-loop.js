#!/usr/bin/env node
// A closed loop for an anfed node in Node.js, with nothing of anfed's: the
// npm packages `nats` (with its JetStream API) and `cloudevents` only. The
// wire is the API.
//
// It creates (or resumes) a durable JetStream consumer on the node's signal
// stream with deliver policy "last per subject" and explicit acks: first
// the current state — the last signal of every condition key that matches
// the filter — then every new signal as the node stores it. It prints one
// line per signal and acts on congestion: an interconnect at or above
// --raise % utilisation gets a `mitigation` (reroute), raised once and
// cleared when the congestion clears. A signal is acknowledged only once it
// was handled, so a crash redelivers it; the mitigation's id is derived
// from the congestion's, so the node answers a redone one "duplicate".
//
//   ANFED_PASSWORD=change-me-closed-loop-b node closed-loop.js \
//     --server nats://127.0.0.1:4223 --user closed-loop --operator op-b

import { connect, AckPolicy, DeliverPolicy, StringCodec } from "nats";
import { CloudEvent } from "cloudevents";
import { parseArgs } from "node:util";
import { pathToFileURL } from "node:url";

export const STREAM = "ANFED_SIGNALS"; // every accepted signal, local and imported
const INTAKE = "an.pub"; // publish a signal as a request; the answer says accepted or why not
const sc = StringCodec();

// className turns net.anfed.congestion.v1 into congestion.
function className(type) {
  return type.replace(/^net\.anfed\./, "").replace(/\.v\d+$/, "");
}

// describe is one line per signal: kind, stream sequence, origin, class,
// state, condition key, id.
export function describe(kind, seq, ev) {
  const state = ev.anfedstate === "cleared" ? "cleared (not active)" : ev.anfedstate;
  return `${kind.padEnd(7)} seq=${String(seq).padEnd(5)} ${String(ev.anfedorigin).padEnd(6)} ${className(ev.type).padEnd(21)} ${state.padEnd(20)} ${ev.subject.padEnd(28)} id=${ev.id}`;
}

// runLoop consumes until stop() is called. print gets every line.
export async function runLoop(opts) {
  const o = {
    filter: "an.sig.>",
    durable: "closed-loop-node",
    raise: 85,
    print: (l) => console.log(l),
    ...opts,
  };
  const nc = await connect({ servers: o.server, user: o.user, pass: o.password, name: "closed-loop-node" });
  const jsm = await nc.jetstreamManager();
  const js = nc.jetstream();

  // Signals stored up to the stream's last sequence before the consumer
  // exists are the current state; everything after is live.
  let currentUntil = (await jsm.streams.info(STREAM)).state.last_seq;
  let info;
  try {
    info = await jsm.consumers.info(STREAM, o.durable);
    // A durable consumer keeps its place: what it delivers now was stored
    // while the loop was away, or is new.
    currentUntil = 0;
    o.print(`# ${o.durable}: resuming on ${info.config.filter_subject}, ${info.num_pending} signals waiting`);
  } catch (err) {
    if (err?.api_error?.err_code !== 10014) throw err; // 10014: consumer not found
    info = await jsm.consumers.add(STREAM, {
      durable_name: o.durable,
      description: "closed-loop-node example",
      filter_subject: o.filter,
      // The last signal of every condition key, then every new one.
      deliver_policy: DeliverPolicy.LastPerSubject,
      ack_policy: AckPolicy.Explicit,
      max_ack_pending: 1, // one at a time: a key's signals are handled in order
      ack_wait: 30_000_000_000, // ns: a signal not acked in 30 s is redelivered
    });
    o.print(`# ${o.durable}: current state of ${o.filter}: ${info.num_pending} condition keys, then live`);
  }

  const consumer = await js.consumers.get(STREAM, o.durable);
  const messages = await consumer.consume({ max_messages: 16 });
  const active = new Set(); // condition keys with a mitigation raised by this loop
  const done = (async () => {
    for await (const m of messages) {
      let ev;
      try {
        ev = new CloudEvent(JSON.parse(sc.decode(m.data)));
      } catch (err) {
        o.print(`# seq ${m.seq} is not a CloudEvent: ${err.message}`);
        m.term();
        continue;
      }
      o.print(describe(m.seq <= currentUntil ? "current" : "live", m.seq, ev));
      try {
        await act(nc, o, active, ev);
        m.ack();
      } catch (err) {
        o.print(`# ${ev.id}: ${err.message}; again in 2 s`);
        m.nak(2000);
      }
    }
  })();

  return {
    async stop() {
      messages.stop();
      await done;
      await nc.drain();
    },
  };
}

// act raises a reroute for an interconnect congested at or above o.raise
// and clears it when the congestion clears.
async function act(nc, o, active, ev) {
  if (className(ev.type) !== "congestion" || !o.operator) return;
  const d = ev.data;
  if (d?.link?.kind !== "interconnect") return;
  const key = `${ev.anfedorigin}/${ev.subject}`;
  let state;
  if (ev.anfedstate === "cleared" && active.has(key)) state = "cleared";
  else if (ev.anfedstate !== "cleared" && !active.has(key) && d.utilisationPercent >= o.raise) state = "raised";
  else return;

  const mitigation = new CloudEvent({
    id: `reroute-${ev.id}-${state}`,
    source: `anfed://${o.operator}/closed-loop-node`,
    type: "net.anfed.mitigation.v1",
    subject: ev.subject,
    time: new Date().toISOString(),
    datacontenttype: "application/json",
    anfedorigin: o.operator,
    anfedstate: state,
    severitytext: "INFO",
    severitynumber: 9,
    causationid: ev.id,
    data: {
      action: "reroute",
      status: state === "raised" ? "in-progress" : "completed",
      detail: `shift traffic away from ${d.link.id} (${d.utilisationPercent}% utilised)`,
      respondsTo: [{ source: ev.source, id: ev.id }],
      target: { id: d.link.id, type: "interconnect" },
      expectedEffect: `utilisation of ${d.link.id} below ${o.raise}%`,
    },
  });
  const answer = await nc.request(INTAKE, sc.encode(JSON.stringify(mitigation)), { timeout: 10_000 });
  const a = JSON.parse(sc.decode(answer.data));
  if (a.status !== "accepted" && a.status !== "duplicate") {
    // A refusal does not change on a retry: the node keeps the refused
    // mitigation on an.dlq with the reason. Say it and move on.
    o.print(`act     mitigation ${state} ${key}: ${a.status} ${a.reason}: ${a.error}`);
    return;
  }
  if (state === "raised") active.add(key);
  else active.delete(key);
  o.print(`act     mitigation ${state} ${key}: ${a.status}`);
}

// Run from the command line.
if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const { values } = parseArgs({
    options: {
      server: { type: "string", default: "nats://127.0.0.1:4223" },
      user: { type: "string", default: "closed-loop" },
      password: { type: "string", default: process.env.ANFED_PASSWORD ?? "" },
      operator: { type: "string", default: "" },
      filter: { type: "string", default: "an.sig.>" },
      durable: { type: "string", default: "closed-loop-node" },
      raise: { type: "string", default: "85" },
    },
  });
  const loop = await runLoop({ ...values, raise: Number(values.raise) });
  const stop = async () => {
    await loop.stop();
    process.exit(0);
  };
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
}
