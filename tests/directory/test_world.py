# ruff: noqa: E501  (table-driven cases read best one per line)
"""World files: every mistake is reported with its path in the file; the CLI exits 2, never a traceback."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.directory.cli import main
from gateway.directory.world import WorldError, load_world, parse_world

from .conftest import DEMO


def demo_data() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(DEMO.read_text())
    return data


def problems_of(mutate: Any) -> list[str]:
    data = copy.deepcopy(demo_data())
    mutate(data)
    with pytest.raises(WorldError) as info:
        parse_world(data, "w.yaml")
    return info.value.problems


def test_demo_world_is_valid() -> None:
    world = load_world(DEMO)
    assert (len(world.persons), len(world.customers), len(world.contracts)) == (7, 5, 5)
    assert (len(world.lines), len(world.invoices), len(world.vpns)) == (7, 12, 1)
    # The plaintext proofs are there for the importer to hash, and never shown in a repr.
    anna = world.customers[0]
    assert anna.kundenkennwort == "Huber-Kennwort-1"
    assert "Huber-Kennwort-1" not in repr(anna)
    assert "20202020" not in repr(world.lines)


def _set(path: str, value: Any) -> Any:
    def mutate(data: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = data
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        if value is _DELETE:
            del node[int(last) if last.isdigit() else last]
        else:
            node[int(last) if last.isdigit() else last] = value

    return mutate


_DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "problem"),
    [
        ("lines.3.contract", "ct-9", "lines[3].contract: unknown contract 'ct-9'"),
        ("lines.3.user", "p-nobody", "lines[3].user: unknown person 'p-nobody'"),
        (
            "lines.0.customer",
            "1000010",
            "lines[0].customer: must be '1000001' (the customer of contract 'ct-1000001')",
        ),
        ("lines.5.customer", "1000030", "lines[5].customer: must be '1000020'"),
        ("lines.0.puk", 1010101, "lines[0].puk: expected a string, got a number (quote it"),
        ("lines.0.puk", "1234", "lines[0].puk: not a valid PUK (8 digits): '1234'"),
        ("lines.0.msisdn", "+436641000001", "lines[0].msisdn: not a valid MSISDN"),
        (
            "lines.1.msisdn",
            "436641000001",
            "lines[1].msisdn: duplicate line '436641000001' (first at lines[0].msisdn)",
        ),
        ("lines.0.part", "private", "lines[0].part: only lines of an invoice_split contract have a part"),
        ("lines.4.part", _DELETE, "lines[4].part: required exactly for lines of an invoice_split contract"),
        ("lines.4.part", "both", "lines[4].part: must be one of private, business, got 'both'"),
        ("lines.0.colour", "pink", "lines[0].colour: unknown key"),
        ("lines.0.contract", _DELETE, "lines[0].contract: required"),
        (
            "customers.0.kind",
            "company",
            "customers[0].kind: must be one of private, business, business_member",
        ),
        ("customers.0.number", 1000001, "customers[0].number: expected a string, got a number"),
        ("customers.1.authorised.0", "p-x", "customers[1].authorised[0]: unknown person 'p-x'"),
        ("customers.0.holders", "p-anna-huber", "customers[0].holders: expected a list of person ids"),
        (
            "customers.0.kundenkennwort_hash",
            "plain",
            "customers[0].kundenkennwort_hash: give kundenkennwort or",
        ),
        (
            "contracts.3.framework",
            "1000001",
            "contracts[3].framework: customer '1000001' is not of kind framework",
        ),
        ("contracts.3.framework", _DELETE, "contracts[3].framework: required for a business_member contract"),
        ("contracts.0.customer", "42", "contracts[0].customer: unknown customer '42'"),
        (
            "invoices.0.current",
            True,
            "invoices[1].current: contract 'ct-1000001' already has a current invoice at",
        ),
        ("invoices.0.current", "yes", "invoices[0].current: expected true or false, got 'yes'"),
        ("invoices.0.issued_on", "30.09.2026", "invoices[0].issued_on: expected a date YYYY-MM-DD"),
        (
            "invoices.8.part",
            _DELETE,
            "invoices[8].part: required exactly for invoices of an invoice_split contract",
        ),
        ("vpns.0.customer", "7", "vpns[0].customer: unknown customer '7'"),
        (
            "persons.1.id",
            "p-anna-huber",
            "persons[1].id: duplicate person 'p-anna-huber' (first at persons[0].id)",
        ),
        ("version", 2, "version: unsupported version 2"),
        ("extra", [], "extra: unknown key"),
        ("lines", {"a": 1}, "lines: expected a list, got a mapping"),
    ],
)
def test_problem_names_the_path(path: str, value: Any, problem: str) -> None:
    problems = problems_of(_set(path, value))
    assert any(p.startswith(problem) for p in problems), problems


def test_all_problems_are_collected() -> None:
    def mutate(data: dict[str, Any]) -> None:
        data["lines"][0]["contract"] = "ct-9"
        data["vpns"][0]["customer"] = "7"
        data["persons"][0]["name"] = ""

    problems = problems_of(mutate)
    assert len(problems) >= 3
    assert "persons[0].name: must not be empty" in problems


def test_not_a_mapping() -> None:
    with pytest.raises(WorldError, match=r"<top>: expected a mapping"):
        parse_world([1, 2], "w.yaml")


def test_json_world(tmp_path: Path) -> None:
    data = demo_data()
    for inv in data["invoices"]:
        inv["issued_on"] = inv["issued_on"].isoformat()
    path = tmp_path / "world.json"
    path.write_text(json.dumps(data))
    assert len(load_world(path).lines) == 7


def test_broken_yaml_names_line(tmp_path: Path) -> None:
    path = tmp_path / "w.yaml"
    path.write_text("persons:\n  - {id: p-a, name: A\n")
    with pytest.raises(WorldError, match=r"line \d+ column \d+: not valid YAML"):
        load_world(path)


def test_broken_json_names_line(tmp_path: Path) -> None:
    path = tmp_path / "w.json"
    path.write_text('{"persons": [}')
    with pytest.raises(WorldError, match=r"line 1 column 14: not valid JSON"):
        load_world(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(WorldError, match="not found"):
        load_world(tmp_path / "nope.yaml")


def test_cli_invalid_world_exits_2_without_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = demo_data()
    data["lines"][3]["contract"] = "ct-9"
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    status = main(
        ["directory", "import", str(path), "--database-url", f"sqlite+aiosqlite:///{tmp_path}/x.db"]
    )
    err = capsys.readouterr().err
    assert status == 2
    assert "lines[3].contract: unknown contract 'ct-9'" in err
    assert str(path) in err
    assert "Traceback" not in err
    assert not (tmp_path / "x.db").exists()  # nothing touched


def test_cli_import_show_and_replace(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/x.db"
    assert main(["directory", "import", str(DEMO), "--database-url", url]) == 0
    assert "7 lines" in capsys.readouterr().out
    assert main(["directory", "import", str(DEMO), "--database-url", url]) == 2
    assert "use --replace" in capsys.readouterr().err
    assert main(["directory", "import", str(DEMO), "--database-url", url, "--replace"]) == 0
    capsys.readouterr()
    assert main(["directory", "show", "436641000031", "--database-url", url]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["line"]["part"] == "business"
    assert main(["directory", "show", "1000001", "--database-url", url]) == 0
    out = capsys.readouterr().out
    assert json.loads(out)["lines"][0]["msisdn"] == "436641000001"
    assert "argon2" not in out and "Huber-Kennwort" not in out
    assert main(["directory", "show", "p-thomas-gruber", "--database-url", url]) == 0
    assert json.loads(capsys.readouterr().out)["relations"]["uses_lines"] == ["436641000030", "436641000031"]
    assert main(["directory", "show", "nothing-here", "--database-url", url]) == 1
    assert "nothing in the directory" in capsys.readouterr().err


def test_cli_database_down_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = "postgresql+asyncpg://postgres@127.0.0.1:1/test"
    assert main(["directory", "import", str(DEMO), "--database-url", url]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and "127.0.0.1:1" in err


def test_cli_bad_config_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "gw.toml"
    config.write_text("[nonsense]\n")
    assert main(["directory", "import", str(DEMO), "--config", str(config)]) == 2
    assert "unknown section [nonsense]" in capsys.readouterr().err
