// anfed dashboard: one EventSource on /v1/stream, redrawn on each event.
"use strict";
(function () {
  const NS = "http://www.w3.org/2000/svg";
  const $ = (id) => document.getElementById(id);
  const MAX_REJECTS = 50;
  let rejects = [];

  function el(tag, attrs, text) {
    const e = tag.startsWith("svg:") ? document.createElementNS(NS, tag.slice(4)) : document.createElement(tag);
    for (const k in attrs || {}) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = String(text);
    return e;
  }
  function row(cells, cls) {
    const tr = el("tr", cls ? { class: cls } : {});
    for (const c of cells) {
      if (c instanceof Node) { const td = el("td"); td.appendChild(c); tr.appendChild(td); }
      else if (c && typeof c === "object") tr.appendChild(el("td", { class: c.cls || "" }, c.text));
      else tr.appendChild(el("td", {}, c));
    }
    return tr;
  }
  function fill(tbody, rows) { tbody.replaceChildren(...rows); }
  const rate = (x) => (x || 0).toFixed(1);
  const hhmmss = (t) => (t ? new Date(t).toLocaleTimeString() : "");
  function ago(t) {
    if (!t) return "";
    const s = Math.max(0, Math.round((Date.now() - new Date(t).getTime()) / 1000));
    if (s < 60) return s + "s ago";
    if (s < 3600) return Math.floor(s / 60) + "m ago";
    return Math.floor(s / 3600) + "h ago";
  }
  const sum = (o) => Object.values(o || {}).reduce((a, b) => a + b, 0);

  function drawMap(st) {
    const svg = $("map");
    const W = 640, H = 360, cx = W / 2, cy = H / 2;
    const peers = st.peers || [];
    const RX = 230, RY = 120; // peers on an ellipse around this operator
    const nodes = [];
    const edges = el("svg:g"), labels = el("svg:g");
    peers.forEach((p, i) => {
      // One peer to the right; two left and right; more around the ellipse.
      const a = peers.length === 1 ? 0 : Math.PI + (2 * Math.PI * i) / peers.length;
      const x = cx + RX * Math.cos(a), y = cy + RY * Math.sin(a);
      const state = p.up ? "up" : "down";
      edges.appendChild(el("svg:line", { x1: cx, y1: cy, x2: x, y2: y, class: "edge " + state }));
      const mx = (cx + x) / 2, my = (cy + y) / 2;
      labels.appendChild(el("svg:text", { x: mx, y: my - 10, class: "small" }, "out " + rate(p.rate_out) + "/s · in " + rate(p.rate_in) + "/s"));
      if (p.backlog > 0) labels.appendChild(el("svg:text", { x: mx, y: my + 18, class: "small" }, "backlog " + p.backlog));
      nodes.push({ x, y, r: 34, cls: "node " + state, name: p.id, sub: "link " + state, subcls: state });
    });
    nodes.push({ x: cx, y: cy, r: 44, cls: "node self", name: st.operator.id, sub: "this operator", subcls: "small" });
    const g = el("svg:g");
    for (const n of nodes) {
      const grp = el("svg:g", { class: "peer", "data-peer": n.name });
      grp.appendChild(el("svg:circle", { cx: n.x, cy: n.y, r: n.r, class: n.cls }));
      grp.appendChild(el("svg:text", { x: n.x, y: n.y + 4 }, n.name));
      grp.appendChild(el("svg:text", { x: n.x, y: n.y + n.r + 16, class: n.subcls }, n.sub));
      g.appendChild(grp);
    }
    if (!peers.length) g.appendChild(el("svg:text", { x: cx, y: cy + 80, class: "small" }, "no peers configured"));
    svg.replaceChildren(edges, labels, g);
  }

  // session is the link's session: its state and flaps, and the last
  // reason it went down when it is not established.
  function session(s) {
    if (!s) return "-";
    let text = s.state + (s.flaps ? " (" + s.flaps + " flaps)" : "");
    if (s.state !== "established" && s.last_down) text += ": " + s.last_down;
    return { text: text, cls: s.state === "established" ? "up" : "down" };
  }

  // expires is the soonest end the peer's link depends on (its peering,
  // a certificate) and how long it has: marked from 30 days before.
  function expires(list) {
    if (!list || !list.length) return "-";
    const e = list.reduce((a, b) => (b.seconds_left < a.seconds_left ? b : a));
    const d = e.seconds_left / 86400;
    const left = e.seconds_left <= 0 ? "expired" : d >= 1 ? Math.floor(d) + "d" : Math.max(1, Math.floor(e.seconds_left / 3600)) + "h";
    return { text: left + " (" + e.name + ")", cls: e.warning === "expired" || e.warning === "1d" ? "down" : e.warning ? "stale" : "" };
  }

  function drawPeers(st) {
    fill($("peers").tBodies[0], (st.peers || []).map((p) => {
      const r = sum(p.counters && p.counters.rejected);
      return row([
        p.name ? p.id + " (" + p.name + ")" : p.id,
        { text: p.up ? "up" : "down", cls: p.up ? "up" : "down" },
        ago(p.since), session(p.session), rate(p.rate_in), rate(p.rate_out),
        p.counters ? p.counters.in : 0, p.counters ? p.counters.out : 0,
        p.backlog, p.conditions, { text: p.stale, cls: p.stale ? "stale" : "" }, r, expires(p.expiry),
      ]);
    }));
  }

  function drawConditions(st) {
    const cs = st.conditions || [];
    $("condcount").textContent = st.conditions_total > cs.length ? "(" + cs.length + " of " + st.conditions_total + ")" : "(" + cs.length + ")";
    fill($("conditions").tBodies[0], cs.map((c) => row([
      c.peer, c.origin, c.class, c.subject, c.state,
      { text: c.status, cls: c.status === "stale" ? "stale" : "" }, c.severity || "", hhmmss(c.updated),
    ])));
  }

  function drawRejects(fresh) {
    fill($("rejects").tBodies[0], rejects.map((r) => row([
      hhmmss(r.time), r.from, { text: r.reason, cls: "down" }, r.subject || "", { text: r.detail, cls: "detail" },
    ], r === fresh ? "fresh" : "")));
  }

  // Coordinated actions: read from /v1/actions with each state event (a
  // node without a coordination: section answers 404 and the card stays
  // hidden); pending proposals get accept and decline buttons.
  let actionsBusy = false;
  let lastActions = "";
  function decisions(a) {
    const out = [];
    for (const op of Object.keys(a.decisions || {}).sort()) {
      const d = a.decisions[op];
      let s = op + ": " + d.phase;
      if (d.conflict) s += " (held by " + d.conflict.holder + " until " + hhmmss(d.conflict.until) + ")";
      else if (d.rule) s += " (" + d.rule + ")";
      out.push(s);
    }
    if (a.pending) out.push("waiting for us (" + a.pendingRule + ")");
    return out.join(", ") || "-";
  }
  async function decide(id, verb) {
    const res = $("actresult");
    const body = JSON.stringify({ reason: $("actreason").value, by: "dashboard" });
    try {
      const r = await fetch("v1/actions/" + encodeURIComponent(id) + "/" + verb, {
        method: "POST", headers: { "Authorization": "Bearer " + $("acttoken").value, "Content-Type": "application/json" }, body: body,
      });
      const j = await r.json().catch(() => ({}));
      res.textContent = r.ok ? id + ": " + (verb === "accept" ? "accepted" : "declined") : id + ": " + (j.error || r.status);
      res.className = r.ok ? "up" : "down";
    } catch (e) {
      res.textContent = id + ": " + e;
      res.className = "down";
    }
    refreshActions();
  }
  async function refreshActions() {
    if (actionsBusy) return;
    actionsBusy = true;
    try {
      const r = await fetch("v1/actions");
      if (!r.ok) { $("actions-card").hidden = true; return; }
      const text = await r.text();
      $("actions-card").hidden = false;
      // Redraw only on a change: the buttons stay put under the pointer.
      if (text === lastActions) return;
      lastActions = text;
      const v = JSON.parse(text);
      const acts = v.actions || [];
      $("actcount").textContent = "(" + acts.length + ", " + acts.filter((a) => a.pending).length + " pending)";
      fill($("actions").tBodies[0], acts.map((a) => {
        const buttons = el("span");
        if (a.pending) {
          for (const verb of ["accept", "decline"]) {
            const b = el("button", { type: "button", "data-action": a.actionId, "data-verb": verb }, verb);
            b.addEventListener("click", () => decide(a.actionId, verb));
            buttons.appendChild(b);
          }
        }
        const link = el("a", { class: "trace", "data-trace": a.actionId, title: "show its trace" }, a.actionId);
        link.addEventListener("click", () => showTrace(a.actionId));
        return row([link, a.proposer, a.kind || "", (a.resources || []).map((x) => x.id).join(", "),
          a.phase, { text: decisions(a), cls: a.pending ? "stale" : "" }, buttons], a.pending ? "fresh" : "");
      }));
      fill($("leases").tBodies[0], (v.leases || []).map((l) => row([l.resource, l.grantor, l.holder, l.actionId, hhmmss(l.until)])));
    } catch (e) {
      // the next state event tries again
    } finally {
      actionsBusy = false;
    }
  }

  // Intents: read from the TMF921 API (internal/intent) with the token
  // typed into the card, each state event. A node without an intents:
  // section answers 404 and the card stays hidden; without the token the
  // card asks for it. Each intent's lifecycle is its reports' statuses,
  // oldest first, read again only when the intent changed.
  const INTENTS = "tmf-api/intentManagement/v5/intent";
  const LIFE = { compliant: "up", inProgress: "up", degraded: "stale", acknowledged: "stale", notCompliant: "down", rejected: "down", terminated: "muted" };
  let intentsBusy = false;
  const lifecycles = {}; // intent id -> {at: lastUpdate, chain: "a → b"}
  function expectations(x) {
    return ((x && x.expressionValue && x.expressionValue.expectations) || []).map((e) => e.metric + " " + e.comparator + " " + e.value + " " + e.unit).join(", ");
  }
  async function refreshIntents() {
    if (intentsBusy) return;
    intentsBusy = true;
    try {
      const tok = $("inttoken").value;
      const headers = tok ? { "Authorization": "Bearer " + tok } : {};
      const r = await fetch(INTENTS, { headers: headers });
      if (r.status === 404) { $("intents-card").hidden = true; return; }
      $("intents-card").hidden = false;
      const res = $("intresult");
      if (r.status === 401) {
        res.textContent = tok ? "wrong token" : "type the intent API's bearer token to see the intents";
        res.className = tok ? "down" : "muted";
        fill($("intents").tBodies[0], []);
        return;
      }
      if (!r.ok) { res.textContent = "intents: " + r.status; res.className = "down"; return; }
      res.textContent = "";
      const ins = await r.json();
      $("intcount").textContent = "(" + ins.length + ")";
      for (const i of ins.slice(0, 20)) {
        const l = lifecycles[i.id];
        if (l && l.at === i.lastUpdate) continue;
        const rr = await fetch(INTENTS + "/" + encodeURIComponent(i.id) + "/intentReport", { headers: headers });
        if (!rr.ok) continue;
        const reps = await rr.json();
        const chain = ["acknowledged"];
        for (const rep of reps.slice().reverse()) {
          if (rep.name !== chain[chain.length - 1]) chain.push(rep.name);
        }
        lifecycles[i.id] = { at: i.lastUpdate, chain: chain.slice(-6).join(" → "), n: reps.length };
      }
      fill($("intents").tBodies[0], ins.map((i) => {
        const v = (i.expression && i.expression.expressionValue) || {};
        const l = lifecycles[i.id] || { chain: "", n: 0 };
        return row([i.id, i.role, i.owner + " → " + (v.partner || ""), v.service || "", expectations(i.expression),
          { text: i.lifecycleStatus, cls: LIFE[i.lifecycleStatus] || "" }, hhmmss(i.statusChangeDate),
          { text: i.statusReason || "", cls: "detail" }, { text: l.chain + (l.n ? " (" + l.n + " reports)" : ""), cls: "detail" }]);
      }));
    } catch (e) {
      // the next state event tries again
    } finally {
      intentsBusy = false;
    }
  }

  // The propagation trace as a graph: each signal a box (origin, class,
  // state, id, the operators it came through), an arrow from its cause
  // (causationid) to it; columns by causal level within the trace.
  async function showTrace(id) {
    id = (id || "").trim();
    if (!id) return;
    $("traceid").value = id;
    const info = $("traceinfo"), svg = $("tracegraph");
    try {
      const r = await fetch("v1/trace/" + encodeURIComponent(id));
      const j = await r.json().catch(() => ({}));
      if (!r.ok) { info.textContent = id + ": " + (j.error || r.status); info.className = "down"; svg.replaceChildren(); svg.setAttribute("hidden", ""); return; }
      drawTrace(j);
      info.textContent = id + ": " + j.hops.length + " signal(s) in the chain, " + j.scanned + " stored signals read" + (j.partial ? " (the most recent; older ones not read)" : "");
      info.className = "muted";
    } catch (e) {
      info.textContent = id + ": " + e;
      info.className = "down";
    }
  }
  function drawTrace(tr) {
    const svg = $("tracegraph");
    const hops = tr.hops || [];
    const byID = {};
    hops.forEach((h, i) => { (byID[h.id] = byID[h.id] || []).push(i); });
    // level: 0 for a hop whose cause is not in the trace, else its
    // cause's level + 1 (a cycle stops at the hops already placed).
    const level = new Array(hops.length).fill(-1);
    function place(i, seen) {
      if (level[i] >= 0) return level[i];
      if (seen.has(i)) return 0;
      seen.add(i);
      const causes = byID[hops[i].causationid] || [];
      let l = 0;
      for (const c of causes) if (c !== i) l = Math.max(l, place(c, seen) + 1);
      level[i] = l;
      return l;
    }
    hops.forEach((_, i) => place(i, new Set()));
    const cols = [];
    hops.forEach((h, i) => { (cols[level[i]] = cols[level[i]] || []).push(i); });
    const BW = 220, BH = 62, GX = 60, GY = 18, M = 12;
    const rows = Math.max(1, ...cols.map((c) => (c ? c.length : 0)));
    const W = Math.max(640, M * 2 + cols.length * BW + (cols.length - 1) * GX), H = M * 2 + rows * BH + (rows - 1) * GY;
    svg.setAttribute("viewBox", "0 0 " + W + " " + H);
    svg.style.width = W + "px"; // at its own scale: the boxes' text as the page's
    svg.style.maxWidth = "100%";
    const pos = [];
    cols.forEach((col, l) => (col || []).forEach((i, k) => { pos[i] = { x: M + l * (BW + GX), y: M + k * (BH + GY) }; }));
    const defs = el("svg:defs");
    const marker = el("svg:marker", { id: "arrow", viewBox: "0 0 10 10", refX: "10", refY: "5", markerWidth: "7", markerHeight: "7", orient: "auto" });
    marker.appendChild(el("svg:path", { d: "M0,0 L10,5 L0,10 z" }));
    defs.appendChild(marker);
    const edges = el("svg:g"), boxes = el("svg:g");
    hops.forEach((h, i) => {
      for (const c of byID[h.causationid] || []) {
        if (c === i) continue;
        const a = pos[c], b = pos[i];
        edges.appendChild(el("svg:path", { class: "cause", "data-from": hops[c].id, "data-to": h.id,
          d: "M" + (a.x + BW) + "," + (a.y + BH / 2) + " C" + (a.x + BW + GX / 2) + "," + (a.y + BH / 2) + " " + (b.x - GX / 2) + "," + (b.y + BH / 2) + " " + b.x + "," + (b.y + BH / 2) }));
      }
      const p = pos[i], g = el("svg:g", { class: "hopbox", "data-id": h.id });
      const local = !h.path || !h.path.length;
      g.appendChild(el("svg:rect", { x: p.x, y: p.y, width: BW, height: BH, rx: 6, class: "hop" + (h.depth === 0 ? " start" : "") + (local ? " local" : "") }));
      g.appendChild(el("svg:text", { x: p.x + BW / 2, y: p.y + 18 }, h.origin + " · " + h.class + " · " + h.state));
      g.appendChild(el("svg:text", { x: p.x + BW / 2, y: p.y + 35, class: "small" }, h.id.length > 30 ? h.id.slice(0, 29) + "…" : h.id));
      g.appendChild(el("svg:text", { x: p.x + BW / 2, y: p.y + 52, class: "small" }, (local ? "ours" : "via " + h.path.join(" › ")) + " · " + hhmmss(h.stored)));
      const title = el("svg:title", {}, h.subject + "\n" + h.id + (h.causationid ? "\ncaused by " + h.causationid : ""));
      g.appendChild(title);
      boxes.appendChild(g);
    });
    svg.replaceChildren(defs, edges, boxes);
    svg.removeAttribute("hidden"); // an SVG element has no hidden property
  }
  $("tracego").addEventListener("click", () => showTrace($("traceid").value));
  $("traceid").addEventListener("keydown", (e) => { if (e.key === "Enter") showTrace($("traceid").value); });

  function onState(st) {
    $("operator").textContent = st.operator.name ? st.operator.id + " · " + st.operator.name : st.operator.id;
    const ready = $("ready");
    ready.textContent = st.ready ? "ready" : "not ready";
    ready.className = "badge " + (st.ready ? "ok" : "bad");
    if (st.rejects) { rejects = st.rejects.slice(0, MAX_REJECTS); drawRejects(); }
    drawMap(st);
    drawPeers(st);
    drawConditions(st);
    refreshActions();
    refreshIntents();
  }

  function connect() {
    const es = new EventSource("v1/stream");
    const live = $("live");
    es.onopen = () => { live.textContent = "live"; live.className = "badge ok"; };
    es.onerror = () => { live.textContent = "reconnecting"; live.className = "badge bad"; };
    es.addEventListener("state", (e) => onState(JSON.parse(e.data)));
    es.addEventListener("reject", (e) => {
      const r = JSON.parse(e.data);
      rejects.unshift(r);
      rejects = rejects.slice(0, MAX_REJECTS);
      drawRejects(r);
    });
  }
  connect();
})();
