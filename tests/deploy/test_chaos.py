"""The soak and chaos run (deploy/chaos.py, `make soak`) on a very small size, so it cannot rot:
Redis is killed and started again under load on its append-only file; no answer is given for
another person, no foreign line is allowed, no session is lost, and service comes back."""

from __future__ import annotations

from deploy.chaos import run


async def test_a_redis_kill_under_load_gives_no_wrong_answer_and_loses_no_session() -> None:
    report = await run(300, 20, ("redis",), clients=2, per_client=4, hold=0.5, say=lambda _: None)
    assert report.wrong == []
    assert report.sessions_lost == 0
    assert report.requests >= 300
    # Every request is answered with a status, never a 500 or a dropped connection.
    assert set(report.statuses) <= {"200", "404", "503"}, report.statuses
    assert report.statuses["200"] > 0 and report.statuses["404"] > 0
    assert set(report.recovery) == {"redis"}
    assert "wrong answers: 0" in report.lines()
