"""[upstreams.<name>] limits are validated at start; messages name the file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.settings import SettingsError, load_settings


@pytest.mark.parametrize(
    ("line", "key"),
    [
        ("pool_size = 0", "upstreams.portal.pool_size"),
        ("max_pending_requests = -1", "upstreams.portal.max_pending_requests"),
        ("acquire_timeout_seconds = 0", "upstreams.portal.acquire_timeout_seconds"),
        ("write_timeout_seconds = -1.5", "upstreams.portal.write_timeout_seconds"),
        ("stream_idle_timeout_seconds = 0", "upstreams.portal.stream_idle_timeout_seconds"),
        ("body_idle_timeout_seconds = 0", "upstreams.portal.body_idle_timeout_seconds"),
        ("request_timeout_seconds = 0", "upstreams.portal.request_timeout_seconds"),
        ("read_timeout_seconds = 0", "upstreams.portal.read_timeout_seconds"),
        ("max_response_header_bytes = 10", "upstreams.portal.max_response_header_bytes"),
        ("pool_size = \"4\"", "upstreams.portal.pool_size"),
    ],
)
def test_bad_limit_is_refused_naming_file_and_key(tmp_path: Path, line: str, key: str) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text(f'[upstreams.portal]\nurl = "http://127.0.0.1:8081"\n{line}\n')
    with pytest.raises(SettingsError) as info:
        load_settings(config, environ={})
    assert str(config) in str(info.value) and key in str(info.value)


def test_limits_have_safe_defaults(tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text('[upstreams.portal]\nurl = "http://127.0.0.1:8081"\n')
    up = load_settings(config, environ={}).upstreams["portal"]
    assert up.pool_size >= 1 and up.max_pending_requests >= 0
    assert up.request_timeout_seconds > up.read_timeout_seconds > 0
    assert 0 < up.body_idle_timeout_seconds and 0 < up.acquire_timeout_seconds
