"""`CachedDirectory`: directory facts from memory, never older than the stated bound.

Why: every authorized request resolves the caller and the resource through the
directory; a database round trip each put the database, not the gateway, in charge of
throughput. Facts change rarely (imports, CRM syncs), so each worker keeps the answers it
has seen in a bounded LRU and drops them when the directory's revision changes
(`gateway.directory.revision`, fed by `RevisionWatcher`).

Rules, and why:

- **Whole-cache invalidation.** A changed revision drops every entry: a revision says
  *that* something changed, not *what*, and one changed line can alter several answers
  (the line, its customer's line list, its user's relations). Writes are rare; the cache
  refills at one query per distinct key.
- **Freshness bound.** Entries are served only while the last successful revision check
  *started* at most ``max_staleness`` ago (`confirm`). A change committed before that
  start was seen by that check, so no answer served is older than the bound, even when
  the watcher is stuck or the database stopped answering. Past the bound the cache is
  bypassed (every lookup asks the source, which fails closed with 503 when it cannot
  answer) and `fresh` turns False for readiness and metrics; `lose` also drops it.
- **No stale refill.** A lookup that started before an invalidation does not store its
  answer (a generation number), or an answer read just before a write could outlive it.
- **Negative answers** (no such line) are cached for ``negative_ttl`` seconds only, so a
  flood of unknown ids reaches the source once per id and TTL, and memory is not kept
  for ids that do not exist.
- **Proof checks** (Kundenkennwort, PUK) are never cached: they always compare against
  the stored hash in the source.

Counters are plain integers (one event loop per worker), exported at scrape time by
`CacheCollector`.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from gateway.directory.base import Directory
from gateway.directory.records import (
    ContractRecord,
    CustomerRecord,
    InvoiceRecord,
    LineRecord,
    PersonRecord,
    PersonRelations,
    VpnRecord,
)

__all__ = ["CacheCollector", "CacheStats", "CachedDirectory"]

T = TypeVar("T")

#: What a lookup is about; part of the cache key (ids of different kinds may be equal).
_PERSON, _RELATIONS, _CUSTOMER, _CONTRACT, _LINE, _INVOICE, _INVOICES_OF, _VPN, _LINES_OF, _CONTRACTS_OF = range(10)
_NEVER = math.inf
_MISSING = object()


class CacheStats:
    """Counters of one cache, read by the metrics collector and the tests."""

    __slots__ = ("bypassed", "evictions", "hits", "invalidations", "misses", "negative_expired")

    def __init__(self) -> None:
        self.hits = 0
        self.misses = 0
        self.evictions = 0
        #: Lookups served from the source because the cache was not fresh.
        self.bypassed = 0
        self.invalidations = 0
        self.negative_expired = 0


class CachedDirectory:
    """The `Directory` protocol over another directory, answers kept in a bounded LRU."""

    def __init__(
        self,
        source: Directory,
        *,
        max_entries: int = 100_000,
        negative_ttl_seconds: float = 2.0,
        max_staleness_seconds: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.source = source
        self.max_entries = max_entries
        self.negative_ttl = negative_ttl_seconds
        self.max_staleness = max_staleness_seconds
        self._clock = clock
        #: key → (value, expires at); value None is a negative answer.
        self._entries: OrderedDict[tuple[int, str], tuple[object, float]] = OrderedDict()
        self._generation = 0
        #: When the last successful revision check started; -inf = never (not fresh).
        self._confirmed_at = -math.inf
        self.revision: int | None = None
        self.stats = CacheStats()

    # ------------------------------------------------------------------ freshness
    @property
    def fresh(self) -> bool:
        """True while entries may be served (a revision check started within the bound)."""
        return self._clock() - self._confirmed_at <= self.max_staleness

    def __len__(self) -> int:
        return len(self._entries)

    def invalidate(self) -> None:
        """Drop every entry; lookups in flight will not store what they read."""
        self._entries.clear()
        self._generation += 1
        self.stats.invalidations += 1

    def confirm(self, revision: int, checked_at: float) -> None:
        """The source was at `revision` when a check started at `checked_at` (clock time)."""
        if revision != self.revision:
            if self.revision is not None or self._entries:
                self.invalidate()
            self.revision = revision
        self._confirmed_at = max(self._confirmed_at, checked_at)

    def lose(self) -> None:
        """The revision can no longer be checked: drop everything and serve uncached."""
        self._confirmed_at = -math.inf
        self.revision = None
        if self._entries:
            self.invalidate()

    # ------------------------------------------------------------------ the LRU
    async def _lookup(self, kind: int, key: str, fetch: Callable[[str], Awaitable[T]]) -> T:
        now = self._clock()
        if now - self._confirmed_at > self.max_staleness:
            self.stats.bypassed += 1
            return await fetch(key)
        entries = self._entries
        k = (kind, key)
        entry = entries.get(k)
        if entry is not None:
            value, expires = entry
            if now < expires:
                entries.move_to_end(k)
                self.stats.hits += 1
                return value  # type: ignore[return-value]
            del entries[k]
            self.stats.negative_expired += 1
        self.stats.misses += 1
        generation = self._generation
        fetched = await fetch(key)
        if generation == self._generation and self.fresh:
            expires = _NEVER if fetched is not None else self._clock() + self.negative_ttl
            if fetched is not None or self.negative_ttl > 0:
                entries[k] = (fetched, expires)
                entries.move_to_end(k)
                if len(entries) > self.max_entries:
                    entries.popitem(last=False)
                    self.stats.evictions += 1
        return fetched

    async def _lookup_list(self, kind: int, key: str, fetch: Callable[[str], Awaitable[list[T]]]) -> list[T]:
        """Lists are kept as tuples (an empty one is a positive answer) and copied out."""

        async def as_tuple(k: str) -> tuple[T, ...]:
            return tuple(await fetch(k))

        return list(await self._lookup(kind, key, as_tuple))

    # ------------------------------------------------------------------ Directory
    async def person(self, person_id: str) -> PersonRecord | None:
        return await self._lookup(_PERSON, person_id, self.source.person)

    async def relations(self, person_id: str) -> PersonRelations:
        return await self._lookup(_RELATIONS, person_id, self.source.relations)

    async def customer(self, number: str) -> CustomerRecord | None:
        return await self._lookup(_CUSTOMER, number, self.source.customer)

    async def contract(self, contract_id: str) -> ContractRecord | None:
        return await self._lookup(_CONTRACT, contract_id, self.source.contract)

    async def line(self, msisdn: str) -> LineRecord | None:
        return await self._lookup(_LINE, msisdn, self.source.line)

    async def invoice(self, number: str) -> InvoiceRecord | None:
        return await self._lookup(_INVOICE, number, self.source.invoice)

    async def invoices_of_contract(self, contract_id: str) -> list[InvoiceRecord]:
        return await self._lookup_list(_INVOICES_OF, contract_id, self.source.invoices_of_contract)

    async def vpn(self, vpn_id: str) -> VpnRecord | None:
        return await self._lookup(_VPN, vpn_id, self.source.vpn)

    async def lines_of_customer(self, number: str) -> list[LineRecord]:
        return await self._lookup_list(_LINES_OF, number, self.source.lines_of_customer)

    async def contracts_of_customer(self, number: str) -> list[ContractRecord]:
        return await self._lookup_list(_CONTRACTS_OF, number, self.source.contracts_of_customer)

    async def verify_kundenkennwort(self, customer_number: str, candidate: str) -> bool:
        return await self.source.verify_kundenkennwort(customer_number, candidate)

    async def verify_puk(self, msisdn: str, candidate: str) -> bool:
        return await self.source.verify_puk(msisdn, candidate)

    async def ping(self) -> None:
        await self.source.ping()

    async def close(self) -> None:
        self._entries.clear()
        await self.source.close()


class CacheCollector(Collector):
    """``portal_gateway_directory_cache_*`` from one `CachedDirectory`, read at scrape time."""

    def __init__(self, cache: CachedDirectory, *, listening: Callable[[], bool] | None = None) -> None:
        self.cache = cache
        self.listening = listening

    def collect(self) -> Iterator[Metric]:
        s = self.cache.stats
        prefix = "portal_gateway_directory_cache"
        for name, doc, value in (
            ("hits", "Directory lookups answered from memory.", s.hits),
            ("misses", "Directory lookups that asked the source (and may have stored the answer).", s.misses),
            ("evictions", "Entries dropped because the cache was full (least recently used first).", s.evictions),
            ("invalidations", "Times the whole cache was dropped (revision changed or revision check lost).",
             s.invalidations),
            ("bypassed", "Lookups sent to the source uncached because the revision was not confirmed "
             "within the staleness bound.", s.bypassed),
            ("negative_expired", "Cached 'no such id' answers that expired and were asked again.",
             s.negative_expired),
        ):
            counter = CounterMetricFamily(f"{prefix}_{name}", doc)
            counter.add_metric([], value)
            yield counter
        yield GaugeMetricFamily(f"{prefix}_entries", "Entries in the directory cache.", value=len(self.cache))
        yield GaugeMetricFamily(
            f"{prefix}_fresh",
            "1 while the directory revision was confirmed within the staleness bound (cache serving), else 0.",
            value=1.0 if self.cache.fresh else 0.0,
        )
        yield GaugeMetricFamily(
            f"{prefix}_revision", "The directory revision the cache holds answers of (-1 = unknown).",
            value=float(self.cache.revision if self.cache.revision is not None else -1),
        )
        if self.listening is not None:
            yield GaugeMetricFamily(
                f"{prefix}_listening",
                "1 while a PostgreSQL LISTEN connection delivers revision changes at once (else: poll only).",
                value=1.0 if self.listening() else 0.0,
            )
