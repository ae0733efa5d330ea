"""`portal-gateway`: bad input is one line on stderr and exit status 2, never a traceback;
the component command groups are reachable through the main command."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.cli import main

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run from the repository (relative paths of the shipped files) with no PORTAL_GATEWAY_*
    variables; `serve` writes some into os.environ, monkeypatch puts them back."""
    import os

    monkeypatch.chdir(ROOT)
    for name in list(os.environ):
        if name.startswith("PORTAL_GATEWAY_"):
            monkeypatch.delenv(name)
    for name in ("CONFIG", "SERVER__WORKERS", "SERVER__HOST", "SERVER__PORT"):
        # setenv first so that monkeypatch records "absent" and removes whatever a
        # command under test writes (delenv of an absent name records nothing).
        monkeypatch.setenv("PORTAL_GATEWAY_" + name, "")
        monkeypatch.delenv("PORTAL_GATEWAY_" + name)


def one_error_line(err: str) -> str:
    lines = [x for x in err.splitlines() if x.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize("name", ["gateway.toml", "demo.toml"])
def test_config_check_on_the_shipped_files(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "check", "--config", f"config/{name}"]) == 0
    out = capsys.readouterr()
    assert f"config/{name}: ok" in out.out and "24 routes" in out.out and "portal" in out.out
    assert out.err == ""


def test_config_check_from_the_environment(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PORTAL_GATEWAY_CONFIG", "config/demo.toml")
    assert main(["config", "check"]) == 0
    assert "config/demo.toml: ok" in capsys.readouterr().out


def broken(tmp_path: Path, old: str, new: str, name: str = "gateway.toml") -> Path:
    text = (ROOT / "config" / name).read_text()
    assert old in text
    path = tmp_path / name
    path.write_text(text.replace(old, new))
    return path


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        ("port = 8080", "prot = 8080", "server.prot"),
        ("port = 8080", 'port = "8080"', "server.port"),
        ('backend = "memory"', 'backend = "memcache"', "store.backend"),
        ('path = "config/routes.toml"', 'path = "config/nope.toml"', "routes.path"),
        ('url = "http://127.0.0.1:8081"', 'url = "http://127.0.0.1:8081/api"', "upstreams.portal.url"),
        ("[signing]", "[signin]", "[signin]"),
    ],
)
def test_config_check_on_a_broken_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], old: str, new: str, key: str
) -> None:
    path = broken(tmp_path, old, new)
    assert main(["config", "check", "--config", str(path)]) == 2
    out = capsys.readouterr()
    line = one_error_line(out.err)
    assert str(path) in line and key in line
    assert out.out == ""


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        ("demo = true", "demo = true\npasword_min_length = 14", "auth.pasword_min_length"),
        ('sender = "outbox"', 'sender = 3', "sms.sender"),
        ("[sms]", "[sessions]\nidle_timeout_seconds = \"30m\"\n\n[sms]", "sessions.idle_timeout_seconds"),
    ],
)
def test_config_check_validates_component_sections(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], old: str, new: str, key: str
) -> None:
    path = broken(tmp_path, old, new, name="demo.toml")
    assert main(["config", "check", "--config", str(path)]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert str(path) in line and key in line


def test_config_check_on_invalid_toml(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "g.toml"
    path.write_text("[server\n")
    assert main(["config", "check", "--config", str(path)]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert str(path) in line and "not valid TOML" in line


def test_config_check_on_a_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "check", "--config", str(tmp_path / "none.toml")]) == 2
    assert str(tmp_path / "none.toml") in one_error_line(capsys.readouterr().err)


def test_config_check_on_a_broken_route_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    routes = tmp_path / "routes.toml"
    routes.write_text((ROOT / "config" / "routes.toml").read_text().replace('path = "/api/vpn/{vpn}"',
                                                                            'path = "/api/vpn/{vpn"', 1))
    path = broken(tmp_path, 'path = "config/routes.toml"', f'path = "{routes}"')
    assert main(["config", "check", "--config", str(path)]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert str(routes) in line and "/api/vpn/{vpn" in line


def test_env_override_error_names_the_variable(monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PORTAL_GATEWAY_SERVER__PORT", "abc")
    assert main(["config", "check", "--config", "config/gateway.toml"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "config/gateway.toml" in line and "server.port" in line and "PORTAL_GATEWAY_SERVER__PORT" in line


def test_serve_with_several_workers_needs_redis(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--config", "config/demo.toml", "--workers", "2"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "config/demo.toml" in line and "server.workers = 2" in line and 'store.backend = "redis"' in line


def test_serve_with_a_broken_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = broken(tmp_path, "port = 8080", "port = 0")
    assert main(["serve", "--config", str(path)]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert str(path) in line and "server.port" in line


@pytest.mark.parametrize("argv", [["frobnicate"], [], ["config"], ["config", "frob"], ["serve", "--workers", "x"]])
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "error:" in err and "Traceback" not in err


def test_help_lists_every_group(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for group in ("serve", "demo", "config", "policy", "directory", "accounts"):
        assert group in out


def test_policy_check_through_the_main_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policy", "check"]) == 0
    assert "Traceback" not in capsys.readouterr().err


def test_policy_check_on_a_broken_policy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.polar"
    bad.write_text((ROOT / "policies" / "portal.polar").read_text() + "\nthis is not polar(\n")
    status = main(["policy", "check", "--policy", str(bad)])
    assert status != 0
    assert "Traceback" not in capsys.readouterr().err


def test_directory_import_through_the_main_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'dir.db'}"
    argv = ["directory", "import", "demo/directory.yaml", "--database-url", url]
    assert main(argv) == 0
    assert "imported demo/directory.yaml" in capsys.readouterr().out
    assert main(argv) == 2  # not empty any more: --replace needed
    assert "Traceback" not in capsys.readouterr().err
    assert main([*argv, "--replace"]) == 0
    assert main(["directory", "show", "1000021", "--database-url", url]) == 0
    assert "Sophie" in capsys.readouterr().out


def test_directory_import_of_a_missing_world(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'dir.db'}"
    assert main(["directory", "import", str(tmp_path / "none.yaml"), "--database-url", url]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_console_script() -> None:
    exe = shutil.which("portal-gateway", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.skip("portal-gateway console script not installed in this environment")
    done = subprocess.run([exe, "policy", "check"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    done = subprocess.run([exe, "config", "check", "--config", "config/nope.toml"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "config/nope.toml" in done.stderr and "Traceback" not in done.stderr
