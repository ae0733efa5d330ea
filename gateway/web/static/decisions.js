"use strict";
// Refreshes the decision page in place from /_gateway/decisions.json every two seconds.
// Everything it shows is also on the server-rendered page; the charts are the server's SVG.
(function () {
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
  function chart(id, svgMarkup) {
    // The server escapes every label; parsing as SVG keeps it inert (no scripts run from it).
    const parsed = new DOMParser().parseFromString("<div>" + svgMarkup + "</div>", "text/html");
    document.getElementById(id).replaceChildren(...parsed.body.firstChild.childNodes);
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
      fill("routes", s.denied_routes, "no denials");
      fill("actions", s.denied_actions, "no denials");
      fill("roles", s.denied_roles, "no denials");
      fill("shadow", s.shadow_disagreements, s.shadow_configured ? "no disagreement" : "no shadow policy configured");
      const shadow = document.getElementById("shadow-status");
      shadow.className = s.shadow_status.class; shadow.textContent = s.shadow_status.text;
      document.getElementById("stepup-challenges").textContent = s.step_up_challenges;
      document.getElementById("stepup-completed").textContent = s.step_up_completed;
      document.getElementById("stepup-rate").textContent = s.step_up_rate === null ? "-" : Math.round(100 * s.step_up_rate) + "%";
      chart("over-time", s.charts.outcomes);
      chart("over-time-reasons", s.charts.reasons);
      document.body.dataset.refreshed = String(Number(document.body.dataset.refreshed || 0) + 1);
    } catch (e) { /* the next refresh tries again */ }
  }
  refresh();
  setInterval(refresh, 2000);
})();
