"""The decision page for security teams, on the operations listener.

`GET /_gateway/decisions` shows what the live policy decides: decisions by outcome and by
denial reason, the most denied actions and roles, step-up challenges and how many were
completed, shadow-policy disagreements, and the active policy revision or the error of the
last failed reload. Everything comes from the gateway's own metrics (the same exposition a
scrape gets, so with several workers it is their sum): no extra service, no database.

The page is complete without JavaScript (server-rendered tables). A small script of our own
(`gateway/web/static/decisions.js`, served as `/_gateway/decisions.js`; nothing from a CDN, and
the page's CSP forbids anything else) refreshes it from `/_gateway/decisions.json` every two
seconds and draws decisions over time from the differences between refreshes.
"""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

__all__ = ["DecisionSummary", "decision_routes", "summarize_exposition"]

#: The step-up endpoint whose successful answers complete a challenge.
_STEP_UP_ROUTE = "/auth/step-up"
_TOP = 10


@dataclass
class DecisionSummary:
    total: int = 0
    by_outcome: dict[str, int] = field(default_factory=dict)
    denial_reasons: list[tuple[str, int]] = field(default_factory=list)
    denied_actions: list[tuple[str, int]] = field(default_factory=list)
    denied_roles: list[tuple[str, int]] = field(default_factory=list)
    step_up_challenges: int = 0
    step_up_completed: int = 0
    shadow_disagreements: list[tuple[str, int]] = field(default_factory=list)
    shadow_configured: bool = False
    policy_ok: bool = True
    policy_message: str = ""

    @property
    def step_up_rate(self) -> float | None:
        if not self.step_up_challenges:
            return None
        return min(1.0, self.step_up_completed / self.step_up_challenges)

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["step_up_rate"] = self.step_up_rate
        return data


def summarize_exposition(text: str, policy: tuple[bool, str] | None) -> DecisionSummary:
    summary = DecisionSummary()
    outcomes: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    actions: Counter[str] = Counter()
    roles: Counter[str] = Counter()
    shadow: Counter[str] = Counter()
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
            elif (sample.name == "portal_gateway_requests_total" and labels.get("route") == _STEP_UP_ROUTE
                  and labels.get("status") == "200"):
                summary.step_up_completed += value
            elif sample.name.startswith("portal_policy_shadow_") and sample.name.endswith("_total"):
                summary.shadow_configured = True
                if "disagree" in sample.name:
                    key = " ".join(f"{k}={v}" for k, v in sorted(labels.items()))
                    shadow[key] += value
    summary.total = sum(outcomes.values())
    summary.by_outcome = dict(outcomes.most_common())
    summary.denial_reasons = reasons.most_common(_TOP)
    summary.denied_actions = actions.most_common(_TOP)
    summary.denied_roles = roles.most_common(_TOP)
    summary.shadow_disagreements = shadow.most_common(_TOP)
    if policy is not None:
        summary.policy_ok, summary.policy_message = policy
    return summary


def _table(title: str, rows: list[tuple[str, int]], empty: str, table_id: str) -> str:
    body = "".join(f"<tr><td>{html.escape(k)}</td><td class=n>{v}</td></tr>" for k, v in rows)
    if not rows:
        body = f'<tr><td colspan=2 class=empty>{html.escape(empty)}</td></tr>'
    return (f'<section><h2>{html.escape(title)}</h2><table id="{table_id}"><thead><tr><th scope=col>'
            f"Name</th><th scope=col>Count</th></tr></thead><tbody>{body}</tbody></table></section>")


def render_page(s: DecisionSummary) -> str:
    rate = "-" if s.step_up_rate is None else f"{s.step_up_rate:.0%}"
    policy_class = "ok" if s.policy_ok else "bad"
    policy_text = ("active: " if s.policy_ok else "last reload FAILED, the previous revision serves: ") + (
        s.policy_message or "-")
    shadow_empty = "no disagreement" if s.shadow_configured else "no shadow policy configured"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>portal-gateway · decisions</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{{font:15px/1.4 system-ui,sans-serif;margin:0;color:#1a1a1a;background:#f6f6f8}}
header{{background:#e20074;color:#fff;padding:.8rem 1.2rem}} h1{{margin:0;font-size:1.3rem}}
main{{display:grid;grid-template-columns:repeat(auto-fit,minmax(320px,1fr));gap:1rem;padding:1rem}}
section{{background:#fff;border-radius:6px;padding:.8rem 1rem;box-shadow:0 1px 2px #0002}}
h2{{font-size:1rem;margin:.2rem 0 .6rem}} table{{width:100%;border-collapse:collapse}}
td,th{{padding:.2rem .3rem;border-bottom:1px solid #eee;text-align:left}} .n{{text-align:right}}
.empty{{color:#777}} .ok{{color:#0a6b2b}} .bad{{color:#b00020;font-weight:600}}
#chart{{width:100%;height:140px}} .big{{font-size:1.6rem;font-weight:600}}
</style></head>
<body><header><h1>portal-gateway · what the live policy decides</h1></header>
<main>
<section><h2>Policy</h2><p id="policy" class="{policy_class}">{html.escape(policy_text)}</p>
<p><span class=big id="total">{s.total}</span> decisions since start</p></section>
{_table("Decisions by outcome", list(s.by_outcome.items()), "no decisions yet", "outcomes")}
<section><h2>Decisions over time</h2>
<svg id="chart" role="img" aria-label="decisions per refresh by outcome" viewBox="0 0 300 100"
 preserveAspectRatio="none"></svg><p id="legend" class="empty">updates every 2 s while this page is open</p>
</section>
{_table("Denials by reason", s.denial_reasons, "no denials", "reasons")}
{_table("Most denied actions", s.denied_actions, "no denials", "actions")}
{_table("Most denied roles", s.denied_roles, "no denials", "roles")}
<section><h2>Step-up</h2><p>challenges <span id="stepup-challenges" class=big>{s.step_up_challenges}</span>
· completed <span id="stepup-completed" class=big>{s.step_up_completed}</span>
· rate <span id="stepup-rate" class=big>{rate}</span></p></section>
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
    exposition: Callable[[], bytes], policy_status: Callable[[], tuple[bool, str]] | None
) -> list[BaseRoute]:
    def current() -> DecisionSummary:
        return summarize_exposition(exposition().decode(), policy_status() if policy_status else None)

    async def page(request: Request) -> Response:
        return Response(render_page(current()), media_type="text/html; charset=utf-8", headers=_HEADERS)

    async def data(request: Request) -> Response:
        return JSONResponse(current().as_json(), headers={"cache-control": "no-store"})

    source = _script()

    async def script(request: Request) -> Response:
        return Response(source, media_type="text/javascript; charset=utf-8", headers=_HEADERS)

    return [
        Route("/_gateway/decisions", page, methods=["GET"]),
        Route("/_gateway/decisions.json", data, methods=["GET"]),
        Route("/_gateway/decisions.js", script, methods=["GET"]),
    ]
