"""Suite-wide rules.

Under `CI=true` a skipped test is a failure: a test skips only when a real part it needs
(Chromium, the test OpenID provider, Redis, PostgreSQL, nginx, Caddy) is missing, and a green
CI run that did not exercise those parts would say something untrue. Elsewhere (a laptop
without Chromium) the skip stays a skip, with its reason in the summary.
"""

from __future__ import annotations

import os
from collections.abc import Generator

import pytest


def _ci() -> bool:
    return os.environ.get("CI", "").lower() in {"true", "1", "yes"}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, None, None]:
    outcome = yield
    report = outcome.get_result()
    if not (_ci() and report.skipped) or hasattr(report, "wasxfail"):
        return
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    report.outcome = "failed"
    report.longrepr = f"skipped under CI=true (a real part is missing): {reason}"
