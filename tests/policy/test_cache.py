"""The decision cache: least-recently-used eviction, counters, and nothing stale after a change."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from gateway.directory.memory import MemoryDirectory
from gateway.directory.records import LineRecord
from gateway.policy.cache import CacheStats, DecisionCache
from gateway.policy.engine import PolicyEngine
from gateway.policy.model import Actor, Line
from gateway.policy.testing import demo_world, table_hashers
from gateway.settings import SettingsError, load_settings

from .test_authorizer import ANNA, make

ANNAS_LINE = "436641000001"


class ChangingDirectory(MemoryDirectory):
    """The demo world, where a test can move a line to another customer (a directory write)."""

    def __init__(self) -> None:
        super().__init__(demo_world(), hashers=table_hashers())
        self.moved: dict[str, LineRecord] = {}
        self.line_reads = 0

    async def line(self, msisdn: str) -> LineRecord | None:
        self.line_reads += 1
        if msisdn in self.moved:
            return self.moved[msisdn]
        return await super().line(msisdn)


def test_full_cache_keeps_its_hot_entries() -> None:
    stats = CacheStats()
    cache: DecisionCache[str] = DecisionCache(3, stats)
    for key in ("hot", "b", "c"):
        cache.put(key, key)
    assert cache.get("hot") == "hot"  # used: now the most recent
    cache.put("d", "d")  # full: the least recently used ("b") leaves, not everything
    assert "hot" in cache and "c" in cache and "d" in cache and "b" not in cache
    for i in range(20):  # a stream of one-off entries never pushes out an entry in steady use
        assert cache.get("hot") == "hot"
        cache.put(f"cold-{i}", "x")
    assert "hot" in cache and len(cache) == 3
    assert stats.evictions == 21 and stats.hits == 21
    assert cache.get("b") is None and stats.misses == 1


def test_engine_at_capacity_evicts_one_entry_not_all(engine: PolicyEngine) -> None:
    small = dataclasses.replace(engine, cache_size=2, cache_stats=CacheStats())
    holder = Actor("acc_h", role="customer", access_level="full", customers=frozenset({"1000001"}))
    line = Line(ANNAS_LINE, "ct-1000001", "1000001")
    small.decide(holder, "view_usage", line)
    small.decide(holder, "view_tariff", line)
    small.decide(holder, "view_usage", line)  # hot again
    small.decide(holder, "view_itemized_bill", line)  # evicts view_tariff only
    assert small.cache_len() == 2
    before = small.cache_stats.hits
    assert small.decide(holder, "view_usage", line).outcome == "allow"
    assert small.cache_stats.hits == before + 1
    assert small.cache_stats.evictions == 1


async def test_hits_and_misses_in_metrics(tmp_path: Path) -> None:
    reg = CollectorRegistry()
    authz = make(tmp_path, registry=reg)
    base_hits = reg.get_sample_value("portal_policy_cache_hits_total") or 0.0
    base_misses = reg.get_sample_value("portal_policy_cache_misses_total") or 0.0
    for _ in range(3):
        assert (await authz.authorize(ANNA, "view_usage", "line", ANNAS_LINE, request_id="r")).outcome == "allow"
    assert reg.get_sample_value("portal_policy_cache_misses_total") == base_misses + 1
    assert reg.get_sample_value("portal_policy_cache_hits_total") == base_hits + 2
    assert reg.get_sample_value("portal_policy_cache_evictions_total") == 0
    assert reg.get_sample_value("portal_policy_cache_entries") == 1


async def test_policy_reload_starts_an_empty_cache(tmp_path: Path) -> None:
    authz = make(tmp_path)
    assert (await authz.authorize(ANNA, "view_usage", "line", ANNAS_LINE, request_id="r")).outcome == "allow"
    assert authz.engine.cache_len() == 1
    # The security team withdraws view_usage from holders: the cached allow must not survive.
    source = (tmp_path / "portal.polar").read_text()
    changed = source.replace(
        'allow(user: User, "view_usage", line: Line) if user.holds_line(line);\n', ""
    )
    assert changed != source
    (tmp_path / "portal.polar").write_text(changed)
    authz.tests_path = None  # the shipped decision tables pin the old rule; this test is about the cache
    assert await authz.reload()
    assert authz.engine.cache_len() == 0
    d = await authz.authorize(ANNA, "view_usage", "line", ANNAS_LINE, request_id="r")
    assert d.outcome != "allow" and d.policy_revision == authz.revision


async def test_directory_change_is_never_answered_from_the_cache(tmp_path: Path) -> None:
    """The cache key holds the facts themselves, so a changed fact is a new key."""
    directory = ChangingDirectory()
    authz = make(tmp_path, directory=directory)
    for _ in range(3):
        assert (await authz.authorize(ANNA, "view_usage", "line", ANNAS_LINE, request_id="r")).outcome == "allow"
    record = await MemoryDirectory.line(directory, ANNAS_LINE)
    assert record is not None
    # The line is moved to another customer (directory import, a contract transfer).
    directory.moved[ANNAS_LINE] = dataclasses.replace(record, customer_number="1000002", contract_id="ct-1000002")
    d = await authz.authorize(ANNA, "view_usage", "line", ANNAS_LINE, request_id="r")
    assert d.outcome == "not_found"
    # And back: the old verdict is valid again for the old facts.
    del directory.moved[ANNAS_LINE]
    assert (await authz.authorize(ANNA, "view_usage", "line", ANNAS_LINE, request_id="r")).outcome == "allow"


def test_negative_cache_size_is_refused_at_start_naming_the_key(tmp_path: Path) -> None:
    cfg = tmp_path / "gateway.toml"
    cfg.write_text("[policy]\ncache_size = -1\n")
    with pytest.raises(SettingsError, match=r"gateway.toml: policy.cache_size"):
        load_settings(cfg)
