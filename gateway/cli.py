"""The ``portal-gateway`` command.

    portal-gateway serve   [--config FILE] [--workers N] [--host H] [--port P]
    portal-gateway demo    the gateway in front of the demo backend on embedded defaults
    portal-gateway config check [--config FILE]
    portal-gateway policy check|test|explain ...      (gateway/policy/cli.py)
    portal-gateway directory import|show ...          (gateway/directory/cli.py)
    portal-gateway accounts ...                       (gateway/auth/cli.py)

Every command answers bad input with one precise line on stderr and exit
status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from gateway.logs import configure_logging
from gateway.settings import SettingsError, load_settings

__all__ = ["main"]

#: Sub-command groups that live next to their concept; each module has register(subparsers).
_GROUPS = ("gateway.policy.cli", "gateway.directory.cli", "gateway.auth.cli")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # exit 2 with one line, as argparse does, plus a hint
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n")


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    overrides: dict[str, Any] = {}
    if args.workers is not None:
        overrides["server.workers"] = args.workers
    if args.host is not None:
        overrides["server.host"] = args.host
    if args.port is not None:
        overrides["server.port"] = args.port
    # Validate before anything starts (errors name the key and the file); the
    # process environment is only touched once we really hand over to workers.
    settings = load_settings(args.config, overrides=overrides)
    from gateway.app import build_app

    configure_logging()
    if settings.server.workers == 1:
        # Build once here so a startup error (routes, keys, policy) is reported
        # before the socket opens, then hand the instance to uvicorn.
        target: Any = build_app(settings, serve_ops=True)
        factory = False
    else:
        # Worker processes build their app from the environment (uvicorn's factory).
        if args.config:
            os.environ["PORTAL_GATEWAY_CONFIG"] = args.config
        for key, value in overrides.items():
            section, _, name = key.partition(".")
            os.environ[f"PORTAL_GATEWAY_{section.upper()}__{name.upper()}"] = str(value)
        target, factory = "gateway.app:create_app", True
        # Metric snapshots of an earlier run would be added to this run's totals.
        for stale in (settings.path(settings.server.data_dir) / "metrics").glob("*.prom"):
            stale.unlink(missing_ok=True)
    uvicorn.run(
        target,
        factory=factory,
        host=settings.server.host,
        port=settings.server.port,
        workers=settings.server.workers if factory else None,
        proxy_headers=False,  # the gateway reads forwarding headers itself, from trusted peers only
        server_header=False,
        access_log=False,
        log_config=None,  # configure_logging: one JSON format for the gateway's and uvicorn's lines
        log_level="info",
        timeout_graceful_shutdown=settings.server.graceful_shutdown_seconds,
        loop="auto",
        http="auto",
    )
    return 0


def _config_check(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    from gateway.auth.config import load_auth_config
    from gateway.auth.oidc.config import OidcSettings, validate_oidc_settings
    from gateway.routes import load_routes

    # Component sections are parsed by their components; check them here too, or a
    # typo in [auth] would pass the check and stop only the real start.
    load_auth_config(settings)
    validate_oidc_settings(settings.section(OidcSettings, "oidc"), settings.source)

    table = load_routes(settings.path(settings.routes.path), settings.upstreams)
    print(f"{settings.source}: ok ({len(table.routes)} routes, upstreams: {', '.join(sorted(settings.upstreams))})")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from gateway.demo_runner import run_demo

    configure_logging()
    return run_demo(host=args.host, port=args.port, backend_port=args.backend_port, ops_port=args.ops_port)


def _decisions(args: argparse.Namespace) -> int:
    from gateway.policy.decisions import command

    return command(args)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("portal-gateway")
    except PackageNotFoundError:
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="portal-gateway", description="Policy-as-code authorization gateway for the portal.")
    parser.add_argument("--version", action="version", version=f"portal-gateway {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    serve = sub.add_parser("serve", help="run the gateway")
    serve.add_argument("--config", help="TOML configuration (default: $PORTAL_GATEWAY_CONFIG)")
    serve.add_argument("--workers", type=int, help="worker processes (more than 1 needs the Redis store)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.set_defaults(func=_serve)

    demo = sub.add_parser("demo", help="run the gateway in front of the demo backend (embedded defaults)")
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--port", type=int, default=8080)
    demo.add_argument("--backend-port", type=int, default=8081)
    demo.add_argument("--ops-port", type=int, default=8082, help="operations listener (readiness, metrics)")
    demo.set_defaults(func=_demo)

    config = sub.add_parser("config", help="configuration tools")
    config_sub = config.add_subparsers(dest="config_command", required=True, parser_class=_Parser)
    check = config_sub.add_parser("check", help="validate the configuration and the route table")
    check.add_argument("--config", help="TOML configuration (default: $PORTAL_GATEWAY_CONFIG)")
    check.set_defaults(func=_config_check)

    decisions = sub.add_parser("decisions", help="query the JSON decision log (filters, summary, follow)")
    decisions.add_argument("file", nargs="?", help="decision log file (default: policy.decision_log of --config)")
    decisions.add_argument("--config", help="TOML configuration (default: $PORTAL_GATEWAY_CONFIG)")
    decisions.add_argument("--subject", help="e.g. acc_…, line:436641000040, client:billing")
    decisions.add_argument("--outcome", help="allow, deny, not_found, step_up, unavailable, …")
    decisions.add_argument("--reason", help="a reason code, e.g. line_user_scope")
    decisions.add_argument("--action", help="a portal action, e.g. view_itemized_bill")
    decisions.add_argument("--resource", help="TYPE or TYPE:ID, e.g. line:436641000001")
    decisions.add_argument("--route", help="a route name of the route table (its action and resource type)")
    decisions.add_argument("--since", help="ISO 8601 time, or a span back from now: 15m, 2h, 1d")
    decisions.add_argument("--until", help="ISO 8601 time, or a span back from now")
    decisions.add_argument("--summary", action="store_true", help="counts instead of records")
    decisions.add_argument("--shadow", action="store_true",
                           help="the shadow policy's disagreement records instead of the decisions")
    decisions.add_argument("--json", action="store_true", help="print the matching JSON lines as they are")
    decisions.add_argument("--follow", "-f", action="store_true",
                           help="print the matches so far, then each new one (like tail -n +1 -f)")
    decisions.set_defaults(func=_decisions)

    for module_name in _GROUPS:
        module = importlib.import_module(module_name)
        register: Callable[[Any], Any] = module.register
        register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result = args.func(args)
    except SettingsError as exc:
        print(f"portal-gateway: configuration error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        # Known input errors of the component groups arrive as their own types;
        # anything else is still one line, with the type for the bug report.
        from gateway.database import DatabaseError
        from gateway.directory.world import WorldError
        from gateway.policy.engine import PolicyLoadError
        from gateway.routes import RouteTableError

        if isinstance(exc, RouteTableError):
            print(f"portal-gateway: route table error: {exc}", file=sys.stderr)
            return 2
        if isinstance(exc, PolicyLoadError):
            print("portal-gateway: the policy does not load:", file=sys.stderr)
            for problem in exc.problems:
                print(f"  {problem}", file=sys.stderr)
            return 2
        if isinstance(exc, (DatabaseError, WorldError)):
            print(f"portal-gateway: {exc}", file=sys.stderr)
            return 2
        raise
    return int(result or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
