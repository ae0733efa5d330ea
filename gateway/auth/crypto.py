"""Encryption of secrets at rest (TOTP seeds, OIDC provider tokens) with a configured key.

AES-256-GCM with a key derived by HKDF-SHA256 from ``[totp] encryption_key``
(so any long random string works, and the same key string never serves two
purposes). The account id is the associated data: a ciphertext copied to
another account's row does not decrypt. Stored form: ``v1:<base64(nonce|ct)>``.
"""

from __future__ import annotations

import base64
import os
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from gateway.settings import SettingsError

__all__ = ["MIN_KEY_LENGTH", "SecretBox", "SecretBoxError", "resolve_encryption_key"]

MIN_KEY_LENGTH = 32
_INFO = b"portal-gateway totp-secret v1"


class SecretBoxError(Exception):
    """A stored secret does not decrypt (wrong key, or tampered)."""


class SecretBox:
    def __init__(self, key_material: str, *, purpose: str = "") -> None:
        """`purpose` derives a key of its own (HKDF info) from the same key string, e.g.
        "oidc-tokens" for the provider tokens of OIDC sessions; "" is the TOTP seeds' key."""
        if len(key_material) < MIN_KEY_LENGTH:
            raise ValueError(f"encryption key must have at least {MIN_KEY_LENGTH} characters")
        info = _INFO if not purpose else f"portal-gateway {purpose} v1".encode()
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(
            key_material.encode("utf-8")
        )
        self._aead = AESGCM(key)

    def encrypt(self, plaintext: str, *, context: str) -> str:
        nonce = os.urandom(12)
        ct = self._aead.encrypt(nonce, plaintext.encode("utf-8"), context.encode("utf-8"))
        return "v1:" + base64.urlsafe_b64encode(nonce + ct).decode("ascii")

    def decrypt(self, stored: str, *, context: str) -> str:
        version, _, body = stored.partition(":")
        if version != "v1":
            raise SecretBoxError("unknown secret format")
        try:
            raw = base64.urlsafe_b64decode(body.encode("ascii"))
            plain = self._aead.decrypt(raw[:12], raw[12:], context.encode("utf-8"))
        except (InvalidTag, ValueError) as exc:
            raise SecretBoxError("stored secret does not decrypt with the configured key") from exc
        return plain.decode("utf-8")


def resolve_encryption_key(configured: str, *, demo: bool, data_dir: Path, source: str) -> str:
    """The key string to use, or a SettingsError naming the key to set.

    In demo mode an unset key is generated once into ``<data_dir>/totp-encryption.key``
    (mode 0600) so that the embedded demo starts on a bare machine and survives restarts.
    """
    if configured:
        if len(configured) < MIN_KEY_LENGTH:
            raise SettingsError(
                f"{source}: totp.encryption_key must have at least {MIN_KEY_LENGTH} characters "
                "(e.g. the output of `openssl rand -base64 32`)"
            )
        return configured
    if not demo:
        raise SettingsError(
            f"{source}: totp.encryption_key is required: it encrypts TOTP secrets at rest. Set it "
            "in [totp] or as PORTAL_GATEWAY_TOTP__ENCRYPTION_KEY (at least 32 characters, e.g. "
            "`openssl rand -base64 32`); only a demo (auth.demo = true) may run without it"
        )
    path = data_dir / "totp-encryption.key"
    if path.is_file():
        return path.read_text(encoding="ascii").strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(key + "\n")
    return key
