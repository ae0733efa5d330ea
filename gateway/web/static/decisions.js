"use strict";
(function () {
  const history = [];
  let last = null;
  const colours = {allow: "#0a6b2b", not_found: "#555", deny: "#b00020", step_up: "#e20074", unavailable: "#f0a000"};
  function fill(id, rows, empty) {
    const body = document.querySelector("#" + id + " tbody");
    body.replaceChildren();
    if (!rows.length) {
      const tr = body.insertRow(); const td = tr.insertCell(); td.colSpan = 2; td.className = "empty";
      td.textContent = empty; return;
    }
    for (const [name, count] of rows) {
      const tr = body.insertRow(); tr.insertCell().textContent = name;
      const n = tr.insertCell(); n.className = "n"; n.textContent = count;
    }
  }
  function draw() {
    const svg = document.getElementById("chart");
    svg.replaceChildren();
    const max = Math.max(1, ...history.flatMap(h => Object.values(h)));
    const outcomes = new Set(history.flatMap(h => Object.keys(h)));
    for (const outcome of outcomes) {
      const points = history.map((h, i) => `${i * 300 / Math.max(1, history.length - 1)},${100 - 100 * (h[outcome] || 0) / max}`);
      const line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
      line.setAttribute("points", points.join(" ")); line.setAttribute("fill", "none");
      line.setAttribute("stroke", colours[outcome] || "#333"); line.setAttribute("stroke-width", "2");
      line.setAttribute("vector-effect", "non-scaling-stroke"); line.dataset.outcome = outcome;
      svg.appendChild(line);
    }
    const legend = document.getElementById("legend");
    legend.replaceChildren();
    for (const outcome of outcomes) {
      const item = document.createElement("span");
      item.textContent = "\u25CF " + outcome + "  ";
      item.style.color = colours[outcome] || "#333";
      legend.appendChild(item);
    }
  }
  async function refresh() {
    try {
      const s = await (await fetch("/_gateway/decisions.json", {cache: "no-store"})).json();
      document.getElementById("total").textContent = s.total;
      const policy = document.getElementById("policy");
      policy.className = s.policy_ok ? "ok" : "bad";
      policy.textContent = (s.policy_ok ? "active: " : "last reload FAILED, the previous revision serves: ") + (s.policy_message || "-");
      fill("outcomes", Object.entries(s.by_outcome), "no decisions yet");
      fill("reasons", s.denial_reasons, "no denials");
      fill("actions", s.denied_actions, "no denials");
      fill("roles", s.denied_roles, "no denials");
      fill("shadow", s.shadow_disagreements, s.shadow_configured ? "no disagreement" : "no shadow policy configured");
      document.getElementById("stepup-challenges").textContent = s.step_up_challenges;
      document.getElementById("stepup-completed").textContent = s.step_up_completed;
      document.getElementById("stepup-rate").textContent = s.step_up_rate === null ? "-" : Math.round(100 * s.step_up_rate) + "%";
      if (last !== null) {
        const delta = {};
        for (const [o, n] of Object.entries(s.by_outcome)) delta[o] = n - (last[o] || 0);
        history.push(delta); if (history.length > 60) history.shift();
        draw();
      }
      last = s.by_outcome;
      document.body.dataset.refreshed = String(Number(document.body.dataset.refreshed || 0) + 1);
    } catch (e) { /* the next refresh tries again */ }
  }
  refresh();
  setInterval(refresh, 2000);
})();
