"""`config check` refuses what would pass the check and then fail at start: a database URL
without the async driver, a Redis URL without a scheme, a decision log that is no sink."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.cli import main
from tests.settings.test_settings import base_toml, write


@pytest.mark.parametrize(
    ("sections", "key", "hint"),
    [
        ({"database": 'url = "postgresql://gw:s3cret@db.internal/portal"'}, "database.url", "postgresql+asyncpg"),
        ({"database": 'url = "sqlite:///var/portal.db"'}, "database.url", "sqlite+aiosqlite"),
        ({"database": 'url = "mysql+aiomysql://db/portal"'}, "database.url", "supported"),
        ({"database": 'url = "not a url"'}, "database.url", "not a database URL"),
        ({"store": 'backend = "redis"\nurl = "localhost:6379"'}, "store.url", "redis://host:port/db"),
        ({"store": 'backend = "redis"\nurl = "http://redis.internal:6379"'}, "store.url", "redis://"),
        ({"policy": 'decision_log = "stderr"'}, "policy.decision_log", '"stdout", "off" or a file path'),
    ],
)
def test_config_check_refuses_what_cannot_start(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], sections: dict[str, str], key: str, hint: str
) -> None:
    text = base_toml()
    for name, body in sections.items():
        if name == "policy":
            text = text.replace("[policy]\n", f"[policy]\n{body}\n")
        else:
            text += f"\n[{name}]\n{body}\n"
    path = write(tmp_path, text)
    assert main(["config", "check", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and key in err and hint in err, err
    assert "Traceback" not in err and "s3cret" not in err


def test_config_check_accepts_the_production_forms(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = base_toml() + (
        '\n[database]\nurl = "postgresql+asyncpg://gw@127.0.0.1/test"\n'
        '\n[store]\nbackend = "redis"\nurl = "rediss://redis.internal:6380/2"\n'
    )
    text = text.replace("[policy]\n", f'[policy]\ndecision_log = "{tmp_path / "decisions.jsonl"}"\n')
    path = write(tmp_path, text)
    assert main(["config", "check", "--config", str(path)]) == 0, capsys.readouterr().err
