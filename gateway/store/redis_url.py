"""The Redis client named by `[store] url`: one server, or a primary found through Sentinel.

    redis://[:password@]host:port/db            one server (rediss:// for TLS, unix:///path)
    redis+sentinel://[:password@]host:port[,host:port…]/service/db[?ssl=true&sentinel_password=…]
                                                the primary of `service`, asked of the Sentinels

With Sentinel, every new connection asks the Sentinels for the current primary, so after a
failover the store answers again by itself; while no primary is known the store raises
StoreUnavailable and the gateway answers 503 (fail closed). A primary demoted to replica
answers READONLY, which redis-py turns into a reconnect to the new primary.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

import redis.asyncio as aioredis
from redis.asyncio.sentinel import Sentinel

__all__ = ["RedisUrlError", "SentinelUrl", "parse_sentinel_url", "redis_client"]


class RedisUrlError(ValueError):
    """`[store] url` is not a form this module knows (the message says which part)."""


@dataclass(frozen=True, slots=True)
class SentinelUrl:
    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int
    password: str | None
    sentinel_password: str | None
    ssl: bool


def parse_sentinel_url(url: str) -> SentinelUrl:
    parts = urlsplit(url)
    if parts.scheme != "redis+sentinel":
        raise RedisUrlError("not a redis+sentinel:// URL")
    netloc = parts.netloc
    password = None
    if "@" in netloc:
        credentials, netloc = netloc.rsplit("@", 1)
        password = unquote(credentials.split(":", 1)[1]) if ":" in credentials else unquote(credentials)
    sentinels: list[tuple[str, int]] = []
    for hostport in filter(None, netloc.split(",")):
        host, sep, port = hostport.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise RedisUrlError(f"sentinel address {hostport!r} is not host:port")
        sentinels.append((host.strip("[]"), int(port)))
    if not sentinels:
        raise RedisUrlError("no sentinel host:port given")
    path = [p for p in parts.path.split("/") if p]
    if not path:
        raise RedisUrlError("no service name (…/mymaster/0)")
    service = path[0]
    db = 0
    if len(path) > 1:
        if not path[1].isdigit():
            raise RedisUrlError(f"database {path[1]!r} is not a number")
        db = int(path[1])
    if len(path) > 2:
        raise RedisUrlError("the path is /service/db, nothing more")
    query = parse_qs(parts.query)
    unknown = set(query) - {"ssl", "sentinel_password"}
    if unknown:
        raise RedisUrlError(f"unknown option {sorted(unknown)[0]!r} (known: ssl, sentinel_password)")
    ssl = query.get("ssl", ["false"])[-1].lower() in ("1", "true", "yes")
    sentinel_password = query.get("sentinel_password", [None])[-1]
    return SentinelUrl(tuple(sentinels), service, db, password, sentinel_password, ssl)


def redis_client(url: str, *, timeout: float) -> aioredis.Redis:
    """A client for `url` with decoded responses and the given socket timeouts."""
    if urlsplit(url).scheme == "redis+sentinel":
        s = parse_sentinel_url(url)
        sentinel = Sentinel(  # type: ignore[no-untyped-call]
            list(s.sentinels),
            sentinel_kwargs={"password": s.sentinel_password, "socket_timeout": timeout,
                             "socket_connect_timeout": timeout},
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            ssl=s.ssl,
        )
        client: aioredis.Redis = sentinel.master_for(
            s.service, db=s.db, password=s.password, decode_responses=True,
        )
        return client
    return aioredis.Redis.from_url(url, decode_responses=True, socket_timeout=timeout,
                                   socket_connect_timeout=timeout)
