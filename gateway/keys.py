"""The gateway's own signing keys, kept under the data directory.

A key is made on first start; a new one when the current is older than
``signing.rotate_after_days`` (or on ``rotate()``). Retired keys stay in the
JWKS until every assertion they signed has expired, so a backend never sees a
valid assertion it cannot verify. Several replicas share keys by sharing the
key directory (see docs/deployment.md).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from joserfc.jwk import ECKey, OKPKey

__all__ = ["KeyStore", "SigningKey"]

#: Retired keys stay published this long beyond the assertion lifetime (clock skew).
_PUBLISH_MARGIN_SECONDS = 300


@dataclass(frozen=True, slots=True)
class SigningKey:
    kid: str
    algorithm: str
    created_at: float
    key: OKPKey | ECKey

    def public_jwk(self) -> dict[str, Any]:
        jwk = dict(self.key.as_dict(private=False))
        jwk.update({"kid": self.kid, "alg": self.algorithm, "use": "sig"})
        return jwk


def _generate(algorithm: str, kid: str) -> OKPKey | ECKey:
    if algorithm == "EdDSA":
        return OKPKey.generate_key("Ed25519", parameters={"kid": kid})
    return ECKey.generate_key("P-256", parameters={"kid": kid})


class KeyStore:
    """Loads, creates and rotates signing keys in one directory."""

    def __init__(
        self,
        directory: Path,
        *,
        algorithm: str,
        rotate_after_seconds: float,
        assertion_ttl_seconds: float,
        clock: Callable[[], float],
    ) -> None:
        self.directory = directory
        self.algorithm = algorithm
        self.rotate_after = rotate_after_seconds
        self.assertion_ttl = assertion_ttl_seconds
        self.clock = clock
        self._keys: tuple[SigningKey, ...] = ()

    @property
    def current(self) -> SigningKey:
        """The key to sign with now; rotates (or adopts a sibling's fresh key) when stale."""
        if not self._keys:
            raise RuntimeError("KeyStore.load() was not called")
        key = self._keys[-1]
        if self.clock() - key.created_at >= self.rotate_after:
            # A long-running gateway rotates too, not only at start. Under the lock,
            # another worker sharing the directory may already have made the new key.
            with self._locked():
                self._keys = self._merged(self._read())
                if self.clock() - self._keys[-1].created_at >= self.rotate_after:
                    self._rotate_unlocked()
            key = self._keys[-1]
        return key

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialize load/rotate between workers (processes) sharing the key directory."""
        fd = os.open(self.directory / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def _read(self) -> list[SigningKey]:
        keys: list[SigningKey] = []
        for path in sorted(self.directory.glob("signing-*.json")):
            try:
                data = json.loads(path.read_text())
                jwk = data["jwk"]
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    key: OKPKey | ECKey = (
                        OKPKey.import_key(jwk) if jwk.get("kty") == "OKP" else ECKey.import_key(jwk)
                    )
                keys.append(SigningKey(data["kid"], data["alg"], float(data["created_at"]), key))
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise ValueError(f"{path}: not a readable signing key file: {exc}") from None
        return [k for k in keys if k.algorithm == self.algorithm]

    def _merged(self, read: list[SigningKey]) -> tuple[SigningKey, ...]:
        """Known keys plus those other workers wrote, oldest first (pruned ones stay out)."""
        by_kid = {k.kid: k for k in (*read, *self._keys)}
        return tuple(sorted(by_kid.values(), key=lambda k: k.created_at))

    def load(self) -> None:
        """Read every key file; make a new key when none is current."""
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        with self._locked():
            self._keys = tuple(sorted(self._read(), key=lambda k: k.created_at))
            now = self.clock()
            if not self._keys or now - self._keys[-1].created_at >= self.rotate_after:
                self._rotate_unlocked()
        self._prune(now)

    def rotate(self) -> SigningKey:
        """Make a new current key; the previous stays published until its assertions expire."""
        with self._locked():
            return self._rotate_unlocked()

    def _rotate_unlocked(self) -> SigningKey:
        kid = f"pg-{int(self.clock())}-{secrets.token_hex(4)}"
        key = _generate(self.algorithm, kid)
        created = self.clock()
        path = self.directory / f"signing-{int(created):012d}-{kid}.json"
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump({"kid": kid, "alg": self.algorithm, "created_at": created,
                       "jwk": key.as_dict(private=True)}, fh)
        os.replace(tmp, path)
        new = SigningKey(kid, self.algorithm, created, key)
        self._keys = (*self._keys, new)
        return new

    def _prune(self, now: float) -> None:
        """Forget keys retired long enough that nothing they signed is still valid."""
        keep: list[SigningKey] = []
        for i, key in enumerate(self._keys):
            successor = self._keys[i + 1] if i + 1 < len(self._keys) else None
            if successor is None or now - successor.created_at < self.assertion_ttl + _PUBLISH_MARGIN_SECONDS:
                keep.append(key)
            else:
                # Nothing it signed is valid any more: a retired private key is only a liability.
                for path in self.directory.glob(f"signing-*-{key.kid}.json"):
                    with contextlib.suppress(OSError):
                        path.unlink()
        self._keys = tuple(keep)

    def jwks(self) -> dict[str, Any]:
        # Publish what every worker sharing the directory may sign with, not only our own.
        with contextlib.suppress(OSError, ValueError):
            self._keys = self._merged(self._read())
        self._prune(self.clock())
        return {"keys": [k.public_jwk() for k in self._keys]}
