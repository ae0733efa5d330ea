"""``portal-gateway policy check | test | explain | diff``: the security team's tools.

Exit codes: 0 fine; 1 the policy failed its checks or a decision table failed;
2 malformed input (missing file, bad YAML, unknown actor or action): always a
one-line message naming the file and key, never a traceback.

`register(subparsers)` adds the commands to the gateway's argparse CLI;
`main(argv)` runs them standalone (``python -m gateway.policy.cli ...``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

import yaml

from gateway.directory.world import World
from gateway.policy.engine import PolicyEngine, PolicyLoadError, build_engine, load_engine, read_route_actions
from gateway.policy.model import ServiceClient
from gateway.policy.reasons import message
from gateway.policy.resolver import Resolver
from gateway.policy.testing import (
    TABLE_NOW,
    TableError,
    demo_world,
    memory_directory,
    parse_actor,
    parse_resource_ref,
    run_policy_tests,
    run_sync,
    table_world,
)
from gateway.settings import PolicySettings

__all__ = ["DEMO_ACTORS", "main", "register"]

_DEFAULTS = PolicySettings()

#: --actor shortcuts for the people of the demo world (docs/domain.md section 4).
DEMO_ACTORS: dict[str, dict[str, Any]] = {
    "anna": {"role": "customer", "bound_customer": "1000001"},
    "markus": {"role": "customer", "bound_customer": "1000010"},
    "eva": {"role": "customer", "bound_customer": "1000010"},
    "sophie": {"role": "business_member", "bound_customer": "1000021", "bound_msisdn": "436641000020"},
    "thomas": {"role": "split_private", "bound_customer": "1000030", "bound_msisdn": "436641000030"},
    "thomas-business": {"role": "line_user", "bound_msisdn": "436641000031"},
    "lukas": {"role": "line_user", "bound_msisdn": "436641000040"},
    "anna-sms": {"role": "line_user", "bound_msisdn": "436641000001"},
}


class UsageError(Exception):
    """Malformed input: exit 2 with this message."""


def register(subparsers: Any) -> None:
    """Add ``policy check|test|explain`` to the ``portal-gateway`` argparse subcommands."""
    policy = subparsers.add_parser("policy", help="check, test and explain the Polar policy")
    sub = policy.add_subparsers(dest="policy_command", metavar="{check,test,explain,diff}")
    sub.required = True

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--policy", default=_DEFAULTS.path, help="policy file (default: %(default)s)")
        p.add_argument(
            "--routes",
            default="config/routes.toml",
            help="route table whose actions must be declared permissions ('' to skip; default: %(default)s)",
        )

    check = sub.add_parser("check", help="strict load + model check, with file:line:col messages")
    common(check)
    check.set_defaults(policy_func=_cmd_check)

    test = sub.add_parser("test", help="run the YAML decision tables (pytest-like output)")
    common(test)
    test.add_argument("tests", nargs="*", help=f"table files or directories (default: {_DEFAULTS.tests})")
    test.add_argument(
        "-k", dest="select", action="append", default=[], help="only cases whose id contains this"
    )
    test.add_argument("-v", "--verbose", action="store_true", help="one line per case")
    test.set_defaults(policy_func=_cmd_test)

    explain = sub.add_parser("explain", help="decision, reason and the rule behind it")
    common(explain)
    explain.add_argument(
        "--actor",
        required=True,
        help="a demo person (" + ", ".join(DEMO_ACTORS) + ") or key=value,... "
        "(role=customer,bound_customer=1000001,access=full,second_factor=fresh)",
    )
    explain.add_argument("--action", required=True)
    explain.add_argument("--resource", required=True, help="TYPE:ID, e.g. line:436641000020, account:self")
    explain.add_argument(
        "--second-factor", choices=("fresh", "stale", "none"), help="override the actor's second factor"
    )
    explain.add_argument("--world", help="a directory world file (YAML/JSON); default: the demo world")
    explain.add_argument("--lang", default="en", choices=("de", "en"))
    explain.set_defaults(policy_func=_cmd_explain)

    diff = sub.add_parser(
        "diff",
        help="what changes from OLD to NEW over tables, demo world and generated worlds; exit 1 on a broken invariant",
    )
    diff.add_argument("old", help="policy file, REV:PATH (HEAD~1:policies/portal.polar) or a git revision (main)")
    diff.add_argument("new", help="the same forms; a bare revision means --policy at that revision")
    diff.add_argument("--policy", default=_DEFAULTS.path, help="policy path for bare revisions (default: %(default)s)")
    diff.add_argument("--routes", default="config/routes.toml", help="route table (default: %(default)s)")
    diff.add_argument("--tests", default=_DEFAULTS.tests, help="decision tables ('' to skip; default: %(default)s)")
    diff.add_argument("--worlds", type=int, default=20, help="generated worlds (default: %(default)s)")
    diff.add_argument("--seed", type=int, default=0, help="seed of the generated worlds (default: %(default)s)")
    diff.add_argument("--no-demo", action="store_true", help="skip the demo world")
    diff.add_argument("--explain", action="store_true", help="the deciding rules of both sides per change")
    diff.add_argument("--format", choices=("text", "markdown"), default="text")
    diff.add_argument("--fail-on-change", action="store_true", help="exit 1 also when any cell changes")
    diff.add_argument("--quiet", "-q", action="store_true", help="no progress lines on stderr")
    diff.set_defaults(policy_func=_cmd_diff)
    policy.set_defaults(func=run_policy_command)


def run_policy_command(args: argparse.Namespace, out: TextIO | None = None) -> int:
    stream = out or sys.stdout
    try:
        return int(args.policy_func(args, stream))
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr if out is None else stream)
        return 2
    except TableError as exc:
        print(f"error: {exc}", file=sys.stderr if out is None else stream)
        return 2


def _load(args: argparse.Namespace, out: TextIO) -> PolicyEngine | None:
    path = Path(args.policy)
    if not path.is_file():
        raise UsageError(f"{path}: policy file not found")
    routes: list[tuple[str, str]] = []
    if args.routes:
        rpath = Path(args.routes)
        if rpath.exists():
            try:
                routes = read_route_actions(rpath)
            except (OSError, ValueError) as exc:
                raise UsageError(f"{rpath}: cannot read route table: {exc}") from None
    try:
        return load_engine(path, route_actions=routes, business_station_url=_DEFAULTS.business_station_url)
    except PolicyLoadError as exc:
        for problem in exc.problems:
            print(problem, file=out)
        print(f"FAILED: {len(exc.problems)} problem(s) in {path}", file=out)
        return None


def _cmd_check(args: argparse.Namespace, out: TextIO) -> int:
    engine = _load(args, out)
    if engine is None:
        return 1
    rules = len(engine.facts.heads)
    print(
        f"OK {engine.filename}: {rules} rules, {len(engine.permissions)} permissions, "
        f"revision {engine.revision}",
        file=out,
    )
    return 0


def _cmd_test(args: argparse.Namespace, out: TextIO) -> int:
    engine = _load(args, out)
    if engine is None:
        return 1
    paths = [Path(p) for p in (args.tests or [_DEFAULTS.tests])]
    for p in paths:
        if not p.exists():
            raise UsageError(f"{p}: no such test file or directory")
    print(f"policy {engine.filename} revision {engine.revision[:12]}", file=out)
    total_pass = total_fail = 0
    seconds = 0.0
    failures: list[str] = []
    for p in paths:
        report = run_policy_tests(engine, p, only=args.select)
        if report.errors:
            raise TableError(report.errors[0])
        seconds += report.seconds
        by_file: dict[str, list[bool]] = {}
        for r in report.results:
            by_file.setdefault(r.nodeid.split("::", 1)[0], []).append(r.passed)
            if args.verbose:
                print(f"{r.nodeid} {'PASSED' if r.passed else 'FAILED'}", file=out)
            if not r.passed:
                failures.append(f"FAILED {r.nodeid} - {r.message}")
        if not args.verbose:
            for file, oks in by_file.items():
                print(f"{file} " + "".join("." if ok else "F" for ok in oks), file=out)
        total_pass += report.passed
        total_fail += report.failed
    if failures:
        print("=" * 30 + " short test summary info " + "=" * 30, file=out)
        for line in failures:
            print(line, file=out)
    if total_pass + total_fail == 0:
        print("no test cases ran", file=out)
        return 1
    summary = f"{total_fail} failed, {total_pass} passed" if total_fail else f"{total_pass} passed"
    print(f"{'=' * 30} {summary} in {seconds:.2f}s {'=' * 30}", file=out)
    return 1 if total_fail else 0


def _cmd_diff(args: argparse.Namespace, out: TextIO) -> int:
    """`policy diff`: the report on `out`; usage and load errors, and progress, on stderr only."""
    try:
        return _diff(args, out)
    except (UsageError, TableError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _diff(args: argparse.Namespace, out: TextIO) -> int:
    from gateway.policy.diff import PolicySourceError, diff_policies, read_policy_source, render

    if args.worlds < 0:
        raise UsageError(f"--worlds must not be negative, got {args.worlds}")
    routes: list[tuple[str, str]] = []
    if args.routes:
        try:
            routes = read_route_actions(args.routes)
        except (OSError, ValueError) as exc:
            raise UsageError(f"{args.routes}: cannot read route table: {exc}") from None
    engines: list[PolicyEngine] = []
    labels: list[str] = []
    for spec in (args.old, args.new):
        try:
            source, label = read_policy_source(spec, args.policy)
        except PolicySourceError as exc:
            raise UsageError(str(exc)) from None
        try:
            engines.append(
                build_engine(source, label, route_actions=routes, business_station_url=_DEFAULTS.business_station_url)
            )
        except PolicyLoadError as exc:
            # stderr, never `out`: CI redirects stdout into diff.md, the error belongs on the terminal
            for problem in exc.problems:
                print(problem, file=sys.stderr)
            print(f"FAILED: {len(exc.problems)} problem(s) in {label}", file=sys.stderr)
            return 1
        labels.append(label)
    tables = args.tests or None
    if tables is not None and not Path(tables).exists():
        raise UsageError(f"{tables}: no such test file or directory")
    report = diff_policies(
        engines[0],
        engines[1],
        old_label=labels[0],
        new_label=labels[1],
        tables=tables,
        route_actions=routes,
        demo=None if args.no_demo else demo_world(),
        demo_actors=DEMO_ACTORS,
        worlds=args.worlds,
        seed=args.seed,
        explain=args.explain,
        business_station_url=_DEFAULTS.business_station_url,
        progress=None if args.quiet else _progress,
    )
    out.write(render(report, args.format, explain=args.explain))
    if report.breaches:
        return 1
    return 1 if args.fail_on_change and (report.changes or report.registration_changes) else 0


def _actor_spec(text: str) -> dict[str, Any]:
    if text in DEMO_ACTORS:
        return dict(DEMO_ACTORS[text])
    if "=" not in text:
        raise UsageError(
            f"--actor: unknown demo person {text!r} (known: {', '.join(DEMO_ACTORS)}) or key=value,..."
        )
    spec: dict[str, Any] = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--actor: expected key=value, got {item!r}")
        spec[key.strip()] = value.strip()
    return spec


def _world(path: str | None) -> World:
    if path is None:
        return demo_world()
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"{p}: cannot read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise UsageError(f"{p}: not valid YAML/JSON: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise UsageError(f"{p}: a world file is a mapping of persons, customers, contracts, lines, ...")
    return table_world(data, str(p), prefix="")


def _cmd_explain(args: argparse.Namespace, out: TextIO) -> int:
    spec = _actor_spec(args.actor)
    if args.second_factor:
        spec["second_factor"] = args.second_factor
    principal = parse_actor(args.actor if args.actor in DEMO_ACTORS else "cli", spec, "--actor")
    rtype, rid = parse_resource_ref(args.resource, "--resource")
    engine = _load(args, out)
    if engine is None:
        return 1
    if args.action not in engine.permissions:
        known = ", ".join(sorted(engine.permissions))
        raise UsageError(f"--action: {args.action!r} is not a declared permission (declared: {known})")
    directory = memory_directory(_world(args.world))
    resolver = Resolver(directory, lambda: TABLE_NOW)
    actor = run_sync(resolver.actor(principal))
    resource = run_sync(resolver.resource(principal, rtype, rid))
    print(f"actor:     {args.actor} -> {_describe_actor(actor)}", file=out)
    print(f"action:    {args.action} ({engine.permissions[args.action]})", file=out)
    print(f"resource:  {args.resource}", file=out)
    if resource is None:
        print("decision:  not_found (not_found)", file=out)
        print(f"why:       {rtype} {rid!r} does not exist in the directory", file=out)
    else:
        ex = engine.explain(actor, args.action, resource)
        v = ex.verdict
        print(f"decision:  {v.outcome} ({v.reason})", file=out)
        print(f"message:   {message(v.reason, args.lang)}", file=out)
        if v.hint_url:
            print(f"hint_url:  {v.hint_url}", file=out)
        if v.visible_parts is not None:
            print(f"parts:     {', '.join(sorted(v.visible_parts)) or '(none)'}", file=out)
        for i, rule in enumerate(ex.rules):
            print(f"{'rule:' if i == 0 else '':<10} {rule}", file=out)
        for note in ex.notes:
            print(f"why:       {note}", file=out)
    print(f"policy:    {engine.filename} revision {engine.revision}", file=out)
    return 0


def _progress(line: str) -> None:
    print(f"policy diff: {line}", file=sys.stderr, flush=True)


def _describe_actor(actor: Any) -> str:
    if isinstance(actor, ServiceClient):
        scopes = ",".join(sorted(actor.scopes)) or "(none)"
        return f"service client_id={actor.client_id} provider={actor.provider} scopes={scopes}"
    parts = [f"role={actor.role}", f"access={actor.access_level}", f"step_up_fresh={actor.step_up_fresh}"]
    if actor.customers:
        parts.append("customers=" + ",".join(sorted(actor.customers)))
    if actor.own_lines:
        parts.append("own_lines=" + ",".join(sorted(actor.own_lines)))
    if not actor.customers and not actor.own_lines:
        parts.append("reach=none")
    return " ".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="portal-gateway")
    subparsers = parser.add_subparsers(dest="command", metavar="policy")
    subparsers.required = True
    register(subparsers)
    args = parser.parse_args(list(argv) if argv is not None else None)
    return run_policy_command(args)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
