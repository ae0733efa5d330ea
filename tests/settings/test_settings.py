"""`load_settings`: every configuration mistake stops the start with a message that
names the file and the dotted key; environment overrides are TOML literals."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from gateway.auth.config import AuthSettings, SessionSettings
from gateway.settings import Settings, SettingsError, load_settings

ROOT = Path(__file__).resolve().parents[2]
POLICY = ROOT / "policies" / "portal.polar"
ROUTES = ROOT / "config" / "routes.toml"


def base_toml(**sections: str) -> str:
    """A valid configuration with absolute paths; `sections` replace or add tables."""
    parts = {
        "server": 'host = "127.0.0.1"\nport = 8080\ndata_dir = "var"',
        "policy": f'path = "{POLICY}"\ntests = "{ROOT / "policies" / "tests"}"',
        "routes": f'path = "{ROUTES}"',
        "upstreams.portal": 'url = "http://127.0.0.1:8081"',
    }
    parts.update(sections)
    return "\n".join(f"[{name}]\n{body}\n" for name, body in parts.items())


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gateway.toml"
    path.write_text(text)
    return path


def fails(path: Path, *, environ: dict[str, str] | None = None) -> str:
    with pytest.raises(SettingsError) as info:
        load_settings(path, environ=environ or {})
    message = str(info.value)
    assert "\n" not in message.strip(), message
    return message


def test_valid_file_loads(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, base_toml()), environ={})
    assert isinstance(s, Settings)
    assert s.server.port == 8080
    assert s.upstreams["portal"].url == "http://127.0.0.1:8081"
    assert s.source == str(tmp_path / "gateway.toml")


@pytest.mark.parametrize("name", ["gateway.toml", "demo.toml"])
def test_shipped_configurations_load(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    s = load_settings(ROOT / "config" / name, environ={})
    assert "portal" in s.upstreams


def test_wrong_key(tmp_path: Path) -> None:
    msg = fails(write(tmp_path, base_toml(server='host = "127.0.0.1"\nprot = 8080')))
    assert str(tmp_path / "gateway.toml") in msg
    assert "server.prot" in msg
    assert "port" in msg  # the known keys are listed


def test_wrong_key_in_upstream(tmp_path: Path) -> None:
    text = base_toml(**{"upstreams.portal": 'url = "http://127.0.0.1:8081"\nread_timeout = 3'})
    msg = fails(write(tmp_path, text))
    assert str(tmp_path / "gateway.toml") in msg and "upstreams.portal.read_timeout" in msg


@pytest.mark.parametrize(
    ("body", "key", "expected"),
    [
        ('port = "8080"', "server.port", "integer"),
        ("port = 80.5", "server.port", "integer"),
        ("access_log = 1", "server.access_log", "true or false"),
        ("host = 127", "server.host", "string"),
        ('trusted_proxies = "10.0.0.0/8"', "server.trusted_proxies", "array"),
        ("trusted_proxies = [1]", "server.trusted_proxies[0]", "string"),
        ("port = true", "server.port", "integer"),
    ],
)
def test_wrong_type(tmp_path: Path, body: str, key: str, expected: str) -> None:
    msg = fails(write(tmp_path, base_toml(server=body)))
    assert str(tmp_path / "gateway.toml") in msg
    assert f"{key}:" in msg
    assert expected in msg


def test_wrong_literal(tmp_path: Path) -> None:
    msg = fails(write(tmp_path, base_toml(store='backend = "memcached"')))
    assert str(tmp_path / "gateway.toml") in msg and "store.backend" in msg
    assert "'memory'" in msg and "'redis'" in msg


def test_section_that_is_not_a_table(tmp_path: Path) -> None:
    path = write(tmp_path, 'server = 3\n' + base_toml().replace("[server]\nhost", "[serverx]\nhost"))
    msg = fails(path)
    assert str(path) in msg and "server" in msg


def test_unknown_section(tmp_path: Path) -> None:
    msg = fails(write(tmp_path, base_toml(sever="port = 1")))
    assert str(tmp_path / "gateway.toml") in msg
    assert "[sever]" in msg


def test_missing_required_key(tmp_path: Path) -> None:
    msg = fails(write(tmp_path, base_toml(**{"upstreams.portal": "read_timeout_seconds = 3.0"})))
    assert str(tmp_path / "gateway.toml") in msg and "upstreams.portal.url" in msg


@pytest.mark.parametrize(("section", "key"), [("policy", "policy.path"), ("routes", "routes.path")])
def test_missing_policy_or_routes_file(tmp_path: Path, section: str, key: str) -> None:
    missing = tmp_path / "nowhere" / "file"
    body = f'path = "{missing}"'
    if section == "policy":
        body += f'\ntests = "{ROOT / "policies" / "tests"}"'
    msg = fails(write(tmp_path, base_toml(**{section: body})))
    assert str(tmp_path / "gateway.toml") in msg
    assert key in msg and str(missing) in msg


def test_missing_seed_file(tmp_path: Path) -> None:
    msg = fails(write(tmp_path, base_toml(directory='seed_file = "/nonexistent/world.yaml"')))
    assert "directory.seed_file" in msg and str(tmp_path / "gateway.toml") in msg


def test_http_directory_needs_url(tmp_path: Path) -> None:
    msg = fails(write(tmp_path, base_toml(directory='backend = "http"')))
    assert "directory.url" in msg and str(tmp_path / "gateway.toml") in msg


@pytest.mark.parametrize("entry", ["10.0.0.0/33", "not-an-ip", "10.0.0.300", ""])
def test_bad_trusted_proxy(tmp_path: Path, entry: str) -> None:
    body = f'trusted_proxies = ["127.0.0.1", "{entry}"]'
    msg = fails(write(tmp_path, base_toml(server=body)))
    assert str(tmp_path / "gateway.toml") in msg
    assert "server.trusted_proxies[1]" in msg
    assert repr(entry) in msg


def test_good_trusted_proxies(tmp_path: Path) -> None:
    body = 'trusted_proxies = ["127.0.0.1", "10.0.0.0/8", "::1", "fd00::/8"]'
    s = load_settings(write(tmp_path, base_toml(server=body)), environ={})
    assert s.server.trusted_proxies == ["127.0.0.1", "10.0.0.0/8", "::1", "fd00::/8"]


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://127.0.0.1:8081/api", "must not have a path"),
        ("http://127.0.0.1:8081/api/", "must not have a path"),
        ("ftp://127.0.0.1:8081", "http(s) URL"),
        ("127.0.0.1:8081", "http(s) URL"),
        ("http://", "http(s) URL"),
    ],
)
def test_bad_upstream_url(tmp_path: Path, url: str, problem: str) -> None:
    msg = fails(write(tmp_path, base_toml(**{"upstreams.portal": f'url = "{url}"'})))
    assert str(tmp_path / "gateway.toml") in msg
    assert "upstreams.portal.url" in msg and problem in msg


def test_upstream_url_with_trailing_slash_is_fine(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, base_toml(**{"upstreams.portal": 'url = "http://127.0.0.1:8081/"'})), environ={})
    assert s.upstreams["portal"].url == "http://127.0.0.1:8081/"


def test_nonpositive_upstream_timeout(tmp_path: Path) -> None:
    body = 'url = "http://127.0.0.1:8081"\nconnect_timeout_seconds = 0'
    msg = fails(write(tmp_path, base_toml(**{"upstreams.portal": body})))
    assert "upstreams.portal" in msg and "timeouts must be positive" in msg


def test_several_workers_need_redis(tmp_path: Path) -> None:
    msg = fails(write(tmp_path, base_toml(server="workers = 2", store='backend = "memory"')))
    assert str(tmp_path / "gateway.toml") in msg
    assert "server.workers" in msg and 'store.backend = "redis"' in msg


def test_several_workers_with_redis_are_fine(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, base_toml(server="workers = 4", store='backend = "redis"')), environ={})
    assert s.server.workers == 4


@pytest.mark.parametrize(
    ("body", "key"),
    [("port = 0", "server.port"), ("port = 70000", "server.port"), ("workers = 0", "server.workers"),
     ("max_body_bytes = -1", "server.max_body_bytes")],
)
def test_out_of_range(tmp_path: Path, body: str, key: str) -> None:
    msg = fails(write(tmp_path, base_toml(server=body)))
    assert str(tmp_path / "gateway.toml") in msg and key in msg


def test_invalid_toml(tmp_path: Path) -> None:
    path = write(tmp_path, base_toml() + "\n[server\nport = ")
    msg = fails(path)
    assert str(path) in msg and "not valid TOML" in msg
    assert "line" in msg  # where in the file


def test_duplicate_key_is_invalid_toml(tmp_path: Path) -> None:
    path = write(tmp_path, base_toml(server="port = 1\nport = 2"))
    msg = fails(path)
    assert str(path) in msg and "not valid TOML" in msg


def test_missing_configuration_file(tmp_path: Path) -> None:
    msg = fails(tmp_path / "absent.toml")
    assert str(tmp_path / "absent.toml") in msg and "not found" in msg


def test_configuration_file_from_environment(tmp_path: Path) -> None:
    path = write(tmp_path, base_toml(server="port = 9191"))
    s = load_settings(None, environ={"PORTAL_GATEWAY_CONFIG": str(path)})
    assert s.server.port == 9191 and s.source == str(path)


# --- environment overrides ---------------------------------------------------------


def test_env_overrides_are_toml_literals(tmp_path: Path) -> None:
    path = write(tmp_path, base_toml())
    s = load_settings(
        path,
        environ={
            "PORTAL_GATEWAY_SERVER__PORT": "9090",
            "PORTAL_GATEWAY_SERVER__ACCESS_LOG": "false",
            "PORTAL_GATEWAY_SERVER__HOST": "0.0.0.0",
            "PORTAL_GATEWAY_SERVER__TRUSTED_PROXIES": '["10.0.0.0/8", "127.0.0.1"]',
            "PORTAL_GATEWAY_UPSTREAMS__PORTAL__READ_TIMEOUT_SECONDS": "5",
            "PORTAL_GATEWAY_STORE__BACKEND": "redis",
            "PORTAL_GATEWAY_SIGNING__ALGORITHM": '"ES256"',
            "UNRELATED": "x",
        },
    )
    assert s.server.port == 9090
    assert s.server.access_log is False
    assert s.server.host == "0.0.0.0"
    assert s.server.trusted_proxies == ["10.0.0.0/8", "127.0.0.1"]
    assert s.upstreams["portal"].read_timeout_seconds == 5.0
    assert s.upstreams["portal"].url == "http://127.0.0.1:8081"  # the rest of the table stays
    assert s.store.backend == "redis"
    assert s.signing.algorithm == "ES256"


def test_env_override_of_a_string_that_looks_like_a_number(tmp_path: Path) -> None:
    """A string setting keeps the text of the variable, even when it parses as a number."""
    path = write(tmp_path, base_toml())
    s = load_settings(path, environ={"PORTAL_GATEWAY_STORE__KEY_PREFIX": "123",
                                     "PORTAL_GATEWAY_SERVER__DATA_DIR": "2024"})
    assert s.store.key_prefix == "123"
    assert s.server.data_dir == "2024"


def test_env_override_of_a_component_section(tmp_path: Path) -> None:
    path = write(tmp_path, base_toml())
    s = load_settings(path, environ={"PORTAL_GATEWAY_AUTH__PASSWORD_MIN_LENGTH": "16",
                                     "PORTAL_GATEWAY_AUTH__DEFAULT_NEXT": "/auth/x"})
    auth = s.section(AuthSettings, "auth")
    assert auth.password_min_length == 16 and auth.default_next == "/auth/x"


def test_env_override_with_wrong_type(tmp_path: Path) -> None:
    path = write(tmp_path, base_toml())
    msg = fails(path, environ={"PORTAL_GATEWAY_SERVER__PORT": "abc"})
    assert str(path) in msg and "server.port" in msg and "integer" in msg
    # The operator must be sent to the variable, not to the file (where port is fine).
    assert "PORTAL_GATEWAY_SERVER__PORT" in msg


def test_env_override_with_unknown_key(tmp_path: Path) -> None:
    path = write(tmp_path, base_toml())
    msg = fails(path, environ={"PORTAL_GATEWAY_SERVER__PROT": "1"})
    assert "server.prot" in msg and str(path) in msg


def test_env_override_without_section(tmp_path: Path) -> None:
    msg = fails(write(tmp_path, base_toml()), environ={"PORTAL_GATEWAY_FOO": "1"})
    assert "PORTAL_GATEWAY_FOO" in msg
    assert "PORTAL_GATEWAY_<SECTION>__<KEY>" in msg


def test_env_override_of_unknown_section(tmp_path: Path) -> None:
    path = write(tmp_path, base_toml())
    msg = fails(path, environ={"PORTAL_GATEWAY_FOO__BAR": "1"})
    assert "[foo]" in msg and str(path) in msg


def test_env_override_into_a_scalar(tmp_path: Path) -> None:
    msg = fails(write(tmp_path, base_toml()), environ={"PORTAL_GATEWAY_SERVER__PORT__X": "1"})
    assert "PORTAL_GATEWAY_SERVER__PORT__X" in msg


def test_env_override_of_workers_checked_against_store(tmp_path: Path) -> None:
    msg = fails(write(tmp_path, base_toml()), environ={"PORTAL_GATEWAY_SERVER__WORKERS": "2"})
    assert "server.workers" in msg and "redis" in msg


# --- component sections ------------------------------------------------------------


def test_component_section_rejects_unknown_key(tmp_path: Path) -> None:
    path = write(tmp_path, base_toml(auth="demo = true\npasword_min_length = 14"))
    s = load_settings(path, environ={})  # components parse their own sections
    with pytest.raises(SettingsError) as info:
        s.section(AuthSettings, "auth")
    msg = str(info.value)
    assert str(path) in msg and "auth.pasword_min_length" in msg and "password_min_length" in msg


def test_component_section_rejects_wrong_type(tmp_path: Path) -> None:
    path = write(tmp_path, base_toml(sessions='idle_timeout_seconds = "30m"'))
    s = load_settings(path, environ={})
    with pytest.raises(SettingsError) as info:
        s.section(SessionSettings, "sessions")
    assert str(path) in str(info.value) and "sessions.idle_timeout_seconds" in str(info.value)


def test_component_section_missing_gives_defaults(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, base_toml()), environ={})
    assert s.section(AuthSettings, "auth") == AuthSettings()


@dataclass(frozen=True)
class Inner:
    a: int


@dataclass(frozen=True)
class Outer:
    inner: Inner
    maybe: int | None = None


def test_section_with_nested_dataclass_and_optional(tmp_path: Path) -> None:
    path = write(tmp_path, base_toml(web="maybe = 3\ninner = { a = 1 }"))
    s = load_settings(path, environ={})
    assert s.section(Outer, "web") == Outer(Inner(1), 3)
    path = write(tmp_path, base_toml(web='inner = { a = "x" }'))
    s = load_settings(path, environ={})
    with pytest.raises(SettingsError, match=r"web\.inner\.a"):
        s.section(Outer, "web")


def test_env_override_through_an_optional_type(tmp_path: Path) -> None:
    path = write(tmp_path, base_toml(web="inner = { a = 1 }"))
    s = load_settings(path, environ={"PORTAL_GATEWAY_WEB__MAYBE": "7"})
    assert s.section(Outer, "web") == Outer(Inner(1), 7)
    s = load_settings(path, environ={"PORTAL_GATEWAY_WEB__MAYBE": "seven"})
    with pytest.raises(SettingsError) as info:
        s.section(Outer, "web")
    assert "web.maybe" in str(info.value) and "PORTAL_GATEWAY_WEB__MAYBE" in str(info.value)


def test_overrides_argument(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, base_toml()), environ={}, overrides={"server.port": 1234})
    assert s.server.port == 1234
