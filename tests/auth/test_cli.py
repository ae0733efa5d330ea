"""``portal-gateway accounts ...`` against a SQLite file."""

from __future__ import annotations

import argparse
import io
import json
import sys

import pytest

from gateway.auth import cli


def run(argv: list[str], monkeypatch, tmp_path, stdin: str = "") -> int:
    config = tmp_path / "gw.toml"
    if not config.exists():
        config.write_text(
            f'[server]\ndata_dir = "{tmp_path}"\n[database]\nurl = "sqlite+aiosqlite:///{tmp_path}/db.sqlite"\n'
            '[totp]\nencryption_key = "cli-test-key-0123456789-0123456789-xx"\n'
            "[auth]\nargon2_time_cost = 1\nargon2_memory_kib = 1024\nargon2_parallelism = 1\n"
        )
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args([*argv, "--config", str(config)])
    return args.func(args)


@pytest.fixture(autouse=True)
def _cwd(monkeypatch) -> None:
    from pathlib import Path

    monkeypatch.chdir(Path(__file__).resolve().parents[2])


def test_create_list_reset_delete(monkeypatch, tmp_path, capsys) -> None:
    assert (
        run(
            [
                "accounts",
                "create",
                "eva@example.at",
                "--role",
                "customer",
                "--customer",
                "1000010",
                "--password-stdin",
            ],
            monkeypatch,
            tmp_path,
            "a-long-portal-password\n",
        )
        == 0
    )
    assert (
        run(
            ["accounts", "create", "bad", "--role", "customer", "--customer", "1000010", "--password-stdin"],
            monkeypatch,
            tmp_path,
            "short\n",
        )
        == 2
    )
    capsys.readouterr()
    assert run(["accounts", "list", "--json"], monkeypatch, tmp_path) == 0
    rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [(r["login"], r["role"], r["bound_customer"]) for r in rows] == [
        ("eva@example.at", "customer", "1000010")
    ]
    assert "password" not in json.dumps(rows)
    assert run(["accounts", "reset-totp", "eva@example.at"], monkeypatch, tmp_path) == 0
    assert run(["accounts", "delete", "eva@example.at"], monkeypatch, tmp_path) == 0
    assert run(["accounts", "delete", "eva@example.at"], monkeypatch, tmp_path) == 1
