"""The decision page for security teams, on the operations listener.

`GET /_gateway/decisions` shows what the live policy decides: decisions over time by outcome
and by denial reason, decisions by outcome and by denial reason, the most denied routes,
actions and roles, step-up challenges and how many were completed, the shadow policy (loaded
or ignored and why, agreements, disagreements, decisions it dropped), and the active policy
revision with the last failed reload (its revision, time and first problem). Everything comes
from the gateway's own metrics (the same exposition a scrape gets, so with several workers it
is their sum): no extra service, no database.

The page is complete without JavaScript: tables and the over-time charts (SVG) are rendered on
the server from a history the operations listener samples every `HISTORY_SECONDS`, and a
``<noscript>`` refresh reloads it. A small script of our own (`gateway/web/static/decisions.js`,
served as `/_gateway/decisions.js`; nothing from a CDN, and the page's CSP forbids anything
else) refreshes it in place from `/_gateway/decisions.json` every two seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import itertools
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

__all__ = ["HISTORY_SECONDS", "DecisionHistory", "DecisionSummary", "decision_routes", "summarize_exposition"]

_TOP = 10
#: How often the history takes a point, and how many it keeps (an hour).
HISTORY_SECONDS = 10.0
_HISTORY_POINTS = 360
#: Answers of a data-plane route that mean "refused" (login needed, forbidden, not yours).
_DENIED_STATUSES = {"401", "403", "404"}
_COLOURS = {"allow": "#0a6b2b", "not_found": "#555", "deny": "#b00020", "step_up": "#e20074",
            "unavailable": "#f0a000"}
_SERIES_COLOURS = ("#b00020", "#1f5fbf", "#f0a000", "#6a3d9a", "#555")


@dataclass
class DecisionSummary:
    total: int = 0
    by_outcome: dict[str, int] = field(default_factory=dict)
    denial_reasons: list[tuple[str, int]] = field(default_factory=list)
    denied_actions: list[tuple[str, int]] = field(default_factory=list)
    denied_roles: list[tuple[str, int]] = field(default_factory=list)
    step_up_challenges: int = 0
    step_up_completed: int = 0
    denied_routes: list[tuple[str, int]] = field(default_factory=list)
    shadow_disagreements: list[tuple[str, int]] = field(default_factory=list)
    shadow_configured: bool = False
    shadow_loaded: bool = False
    shadow_message: str = ""
    shadow_agreements: int = 0
    shadow_dropped: dict[str, int] = field(default_factory=dict)
    policy_ok: bool = True
    policy_message: str = ""
    #: Totals by outcome and by denial reason: what the history samples.
    reason_totals: dict[str, int] = field(default_factory=dict)

    @property
    def step_up_rate(self) -> float | None:
        if not self.step_up_challenges:
            return None
        return min(1.0, self.step_up_completed / self.step_up_challenges)

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["step_up_rate"] = self.step_up_rate
        return data


def summarize_exposition(
    text: str, policy: tuple[bool, str] | None, shadow_status: tuple[bool, str] | None = None
) -> DecisionSummary:
    summary = DecisionSummary()
    outcomes: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    actions: Counter[str] = Counter()
    roles: Counter[str] = Counter()
    shadow: Counter[str] = Counter()
    routes: Counter[str] = Counter()
    dropped: Counter[str] = Counter()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            value = int(sample.value)
            if sample.name == "portal_gateway_decisions_total":
                outcome = labels.get("outcome", "?")
                outcomes[outcome] += value
                if outcome != "allow":
                    actions[labels.get("action", "?")] += value
                    roles[labels.get("role", "?")] += value
                if outcome == "step_up":
                    summary.step_up_challenges += value
            elif sample.name == "portal_policy_decisions_total" and labels.get("outcome") != "allow":
                reasons[labels.get("reason", "?")] += value
            elif sample.name == "portal_gateway_step_up_completed_total":
                summary.step_up_completed += value
            elif (sample.name == "portal_gateway_requests_total" and labels.get("status") in _DENIED_STATUSES
                  and labels.get("action") not in ("control", "public", "-")):
                routes[labels.get("route", "?")] += value
            elif sample.name == "portal_policy_shadow_loaded":
                summary.shadow_configured = True
                summary.shadow_loaded = value == 1
            elif sample.name.startswith("portal_policy_shadow_") and sample.name.endswith("_total"):
                summary.shadow_configured = True
                if "disagree" in sample.name:
                    key = " ".join(f"{k}={v}" for k, v in sorted(labels.items()))
                    shadow[key] += value
                elif "agreements" in sample.name:
                    summary.shadow_agreements += value
                elif "dropped" in sample.name and value:
                    dropped[labels.get("why", "?")] += value
    summary.total = sum(outcomes.values())
    summary.by_outcome = dict(outcomes.most_common())
    summary.denial_reasons = reasons.most_common(_TOP)
    summary.denied_actions = actions.most_common(_TOP)
    summary.denied_roles = roles.most_common(_TOP)
    summary.shadow_disagreements = shadow.most_common(_TOP)
    summary.denied_routes = routes.most_common(_TOP)
    summary.shadow_dropped = dict(dropped.most_common())
    summary.reason_totals = dict(reasons)
    if policy is not None:
        summary.policy_ok, summary.policy_message = policy
    if shadow_status is not None:
        summary.shadow_loaded, summary.shadow_message = shadow_status
        summary.shadow_configured = True
    return summary


class DecisionHistory:
    """Totals by outcome and by denial reason, one point every `HISTORY_SECONDS` (an hour kept).

    Sampled by the operations listener in the background (`run`), and on every page or JSON
    request that finds the last point old, so the charts exist on the first load and without
    JavaScript. Points are totals; the charts show the differences between them.
    """

    def __init__(self, *, interval: float | None = None, clock: Callable[[], float] = time.time) -> None:
        #: Set by `decision_routes`: the summary the page shows, which `start` samples.
        self.sample: Callable[[], DecisionSummary] | None = None
        self.interval = interval if interval is not None else HISTORY_SECONDS
        self._clock = clock
        self.points: deque[tuple[float, dict[str, int], dict[str, int]]] = deque(maxlen=_HISTORY_POINTS)
        self._task: asyncio.Task[None] | None = None

    def note(self, summary: DecisionSummary) -> None:
        now = self._clock()
        if not self.points or now - self.points[-1][0] >= self.interval:
            self.points.append((now, dict(summary.by_outcome), dict(summary.reason_totals)))

    def deltas(self, which: int) -> list[tuple[float, dict[str, int]]]:
        """Per-interval counts of one kind (1: outcomes, 2: denial reasons)."""
        out: list[tuple[float, dict[str, int]]] = []
        for before, after in itertools.pairwise(self.points):
            old = before[1] if which == 1 else before[2]
            new = after[1] if which == 1 else after[2]
            out.append((after[0], {k: max(0, v - old.get(k, 0)) for k, v in new.items()}))
        return out

    async def start(self) -> None:
        async def loop() -> None:
            while True:
                if self.sample is not None:
                    with contextlib.suppress(Exception):  # a failed scrape skips one point
                        self.note(self.sample())
                await asyncio.sleep(self.interval)

        self._task = asyncio.create_task(loop())

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _chart(chart_id: str, label: str, series: list[tuple[float, dict[str, int]]], colours: dict[str, str]) -> str:
    """An SVG line per key over the history (server-rendered; the script swaps in a fresh one)."""
    keys: list[str] = []
    for _, counts in series:
        keys += [k for k in counts if k not in keys]
    top = max([1, *(v for _, counts in series for v in counts.values())])
    lines = []
    for key in keys:
        colour = colours.get(key, "#333")
        if len(series) < 2:
            continue
        points = " ".join(
            f"{i * 300 / (len(series) - 1):.1f},{100 - 100 * counts.get(key, 0) / top:.1f}"
            for i, (_, counts) in enumerate(series)
        )
        lines.append(f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2" '
                     f'vector-effect="non-scaling-stroke" data-key="{html.escape(key)}"></polyline>')
    legend = " ".join(f'<span style="color:{colours.get(k, "#333")}">&#9679; {html.escape(k)}</span>' for k in keys)
    if len(series) < 2:
        legend = f"the first points come {int(HISTORY_SECONDS)} s after start"
    return (f'<svg id="{chart_id}" role="img" aria-label="{html.escape(label)}" viewBox="0 0 300 100" '
            f'preserveAspectRatio="none">{"".join(lines)}</svg><p class="legend">{legend}</p>')


def charts(history: DecisionHistory | None) -> dict[str, str]:
    """The two over-time charts as SVG markup: by outcome, and the five most frequent denial reasons."""
    if history is None:
        return {"outcomes": _chart("chart", "decisions by outcome", [], _COLOURS),
                "reasons": _chart("chart-reasons", "denials by reason", [], {})}
    outcomes = history.deltas(1)
    reasons = history.deltas(2)
    totals: Counter[str] = Counter()
    for _, counts in reasons:
        totals.update(counts)
    top = [k for k, n in totals.most_common(5) if n]
    series = [(t, {k: v for k, v in counts.items() if k in top}) for t, counts in reasons]
    colours = dict(zip(top, _SERIES_COLOURS, strict=False))
    return {
        "outcomes": _chart("chart", f"decisions per {int(history.interval)} s by outcome", outcomes, _COLOURS),
        "reasons": _chart("chart-reasons", f"denials per {int(history.interval)} s by reason", series, colours),
    }


def _table(title: str, rows: list[tuple[str, int]], empty: str, table_id: str) -> str:
    body = "".join(f"<tr><td>{html.escape(k)}</td><td class=n>{v}</td></tr>" for k, v in rows)
    if not rows:
        body = f'<tr><td colspan=2 class=empty>{html.escape(empty)}</td></tr>'
    return (f'<section><h2>{html.escape(title)}</h2><table id="{table_id}"><thead><tr><th scope=col>'
            f"Name</th><th scope=col>Count</th></tr></thead><tbody>{body}</tbody></table></section>")


def _shadow_text(s: DecisionSummary) -> tuple[str, str]:
    if not s.shadow_configured:
        return "empty", "no shadow policy configured"
    if not s.shadow_loaded:
        return "bad", "shadow policy IGNORED: " + (s.shadow_message or "it did not load")
    dropped = sum(s.shadow_dropped.values())
    text = f"{s.shadow_message or 'shadow policy loaded'} · agreements {s.shadow_agreements}"
    if dropped:
        text += " · not compared " + ", ".join(f"{n} ({why})" for why, n in s.shadow_dropped.items())
    return "ok", text


def render_page(s: DecisionSummary, history: DecisionHistory | None = None) -> str:
    rate = "-" if s.step_up_rate is None else f"{s.step_up_rate:.0%}"
    policy_class = "ok" if s.policy_ok else "bad"
    policy_text = ("active: " if s.policy_ok else "last reload FAILED, the previous revision serves: ") + (
        s.policy_message or "-")
    shadow_class, shadow_text = _shadow_text(s)
    shadow_empty = "no disagreement" if s.shadow_configured else "no shadow policy configured"
    drawn = charts(history)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>portal-gateway · decisions</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<noscript><meta http-equiv="refresh" content="10"></noscript>
<style>
body{{font:15px/1.4 system-ui,sans-serif;margin:0;color:#1a1a1a;background:#f6f6f8}}
header{{background:#e20074;color:#fff;padding:.8rem 1.2rem}} h1{{margin:0;font-size:1.3rem}}
main{{display:grid;grid-template-columns:repeat(auto-fit,minmax(320px,1fr));gap:1rem;padding:1rem}}
section{{background:#fff;border-radius:6px;padding:.8rem 1rem;box-shadow:0 1px 2px #0002}}
h2{{font-size:1rem;margin:.2rem 0 .6rem}} table{{width:100%;border-collapse:collapse}}
td,th{{padding:.2rem .3rem;border-bottom:1px solid #eee;text-align:left}} .n{{text-align:right}}
.empty{{color:#777}} .ok{{color:#0a6b2b}} .bad{{color:#b00020;font-weight:600}} .legend{{color:#555;margin:.3rem 0 0}}
svg{{width:100%;height:140px}} .big{{font-size:1.6rem;font-weight:600}}
</style></head>
<body><header><h1>portal-gateway · what the live policy decides</h1></header>
<main>
<section><h2>Policy</h2><p id="policy" class="{policy_class}">{html.escape(policy_text)}</p>
<p><span class=big id="total">{s.total}</span> decisions since start</p></section>
{_table("Decisions by outcome", list(s.by_outcome.items()), "no decisions yet", "outcomes")}
<section><h2>Decisions over time, by outcome</h2><div id="over-time">{drawn["outcomes"]}</div></section>
<section><h2>Denials over time, by reason</h2><div id="over-time-reasons">{drawn["reasons"]}</div></section>
{_table("Denials by reason", s.denial_reasons, "no denials", "reasons")}
{_table("Most denied routes", s.denied_routes, "no denials", "routes")}
{_table("Most denied actions", s.denied_actions, "no denials", "actions")}
{_table("Most denied roles", s.denied_roles, "no denials", "roles")}
<section><h2>Step-up</h2><p>challenges <span id="stepup-challenges" class=big>{s.step_up_challenges}</span>
· completed <span id="stepup-completed" class=big>{s.step_up_completed}</span>
· rate <span id="stepup-rate" class=big>{rate}</span></p></section>
<section><h2>Shadow policy</h2><p id="shadow-status" class="{shadow_class}">{html.escape(shadow_text)}</p></section>
{_table("Shadow policy disagreements", s.shadow_disagreements, shadow_empty, "shadow")}
</main><script src="/_gateway/decisions.js"></script></body></html>"""


def _script() -> str:
    from importlib.resources import files

    return files("gateway.web").joinpath("static/decisions.js").read_text(encoding="utf-8")

_HEADERS = {
    "cache-control": "no-store",
    "content-security-policy": "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'unsafe-inline'; "
    "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "x-content-type-options": "nosniff",
}


def decision_routes(
    exposition: Callable[[], bytes],
    policy_status: Callable[[], tuple[bool, str]] | None,
    shadow_status: Callable[[], tuple[bool, str]] | None = None,
    history: DecisionHistory | None = None,
) -> list[BaseRoute]:
    def current() -> DecisionSummary:
        summary = summarize_exposition(
            exposition().decode(), policy_status() if policy_status else None,
            shadow_status() if shadow_status else None,
        )
        if history is not None:
            history.note(summary)
        return summary

    if history is not None:
        history.sample = current

    async def page(request: Request) -> Response:
        return Response(render_page(current(), history), media_type="text/html; charset=utf-8", headers=_HEADERS)

    async def data(request: Request) -> Response:
        summary = current()
        body = summary.as_json()
        body["charts"] = charts(history)
        shadow_class, shadow_text = _shadow_text(summary)
        body["shadow_status"] = {"class": shadow_class, "text": shadow_text}
        return JSONResponse(body, headers={"cache-control": "no-store"})

    source = _script()

    async def script(request: Request) -> Response:
        return Response(source, media_type="text/javascript; charset=utf-8", headers=_HEADERS)

    return [
        Route("/_gateway/decisions", page, methods=["GET"]),
        Route("/_gateway/decisions.json", data, methods=["GET"]),
        Route("/_gateway/decisions.js", script, methods=["GET"]),
    ]
