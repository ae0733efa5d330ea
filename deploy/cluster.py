"""The production topology as real processes on this machine (`make cluster`).

    nginx (load balancer, 127.0.0.1:<lb>)
      ├── gateway replica a (portal-gateway serve)  ─┐
      └── gateway replica b (portal-gateway serve)  ─┼── demo backend (verifies the assertion
                                                      │   with the gateways' JWKS via nginx)
        a redis-server of its own · a PostgreSQL database on 127.0.0.1:5432 · one key directory

The same thing `deploy/compose.yaml` and `deploy/kubernetes/` describe, without containers:
what one replica does, the other knows (sessions in Redis, accounts and directory in
PostgreSQL, signing keys in the shared data directory). tests/deploy/test_cluster.py kills a
replica under load through this module.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from deploy.ports import free_port

ROOT = Path(__file__).resolve().parents[1]
NGINX_CANDIDATES = ("nginx", "/usr/sbin/nginx")

__all__ = ["Cluster", "ClusterError", "main"]


class ClusterError(RuntimeError):
    """A part of the cluster could not be started (the message says which and why)."""




def _wait_http(url: str, seconds: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise ClusterError(f"{url}: the process exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:  # noqa: S310 - loopback URL we built
                if answer.status == 200:
                    return
        except (OSError, urllib.error.HTTPError):
            pass
        time.sleep(0.2)
    raise ClusterError(f"{url} did not answer 200 within {seconds:.0f} s")


def _nginx() -> str:
    for candidate in NGINX_CANDIDATES:
        found = shutil.which(candidate) or (candidate if os.access(candidate, os.X_OK) else None)
        if found:
            return found
    raise ClusterError("nginx is not installed (Debian: apt-get install nginx-light)")


@dataclass
class Replica:
    name: str
    port: int
    ops_port: int
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class Cluster:
    """Start with `start()`, stop with `stop()` (or use it as a context manager)."""

    work_dir: Path
    postgres_admin_url: str = "postgresql://postgres@127.0.0.1:5432/test"
    database: str = field(default_factory=lambda: f"pgw_cluster_{uuid.uuid4().hex[:10]}")
    lb_port: int = field(default_factory=free_port)
    backend_port: int = field(default_factory=free_port)
    redis_port: int = field(default_factory=free_port)
    replicas: list[Replica] = field(default_factory=list)
    drop_database: bool = True
    _procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.lb_port}"

    def __enter__(self) -> Cluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- parts ---------------------------------------------------------------------------

    def _spawn(self, args: list[str], log_name: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        log = (self.work_dir / f"{log_name}.log").open("ab")
        proc = subprocess.Popen(  # noqa: S603 - fixed programs, arguments we built
            args, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
        )
        self._procs.append(proc)
        return proc

    def _start_redis(self) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            raise ClusterError("redis-server is not installed (Debian: apt-get install redis-server)")
        self._spawn([exe, "--port", str(self.redis_port), "--bind", "127.0.0.1", "--save", "",
                     "--appendonly", "no"], "redis")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.redis_port), 0.5):
                return
            time.sleep(0.1)
        raise ClusterError(f"redis-server did not listen on 127.0.0.1:{self.redis_port}")

    def _psql(self, sql: str) -> None:
        import asyncio

        import asyncpg  # type: ignore[import-untyped]

        async def run() -> None:
            try:
                conn = await asyncpg.connect(self.postgres_admin_url)
            except OSError as exc:
                raise ClusterError(f"PostgreSQL at {self.postgres_admin_url} does not answer: {exc}") from None
            try:
                await conn.execute(sql)
            finally:
                await conn.close()

        asyncio.run(run())

    def _write_config(self) -> Path:
        data = self.work_dir / "data"
        data.mkdir(parents=True, exist_ok=True)
        config = self.work_dir / "gateway.toml"
        config.write_text(f"""\
# Written by deploy/cluster.py: two replicas behind nginx, sharing Redis, PostgreSQL and keys.
[server]
host = "127.0.0.1"
public_url = "{self.url}"
trusted_proxies = ["127.0.0.1"]
data_dir = "{data}"
cookie_secure = false
access_log = false

[store]
backend = "redis"
url = "redis://127.0.0.1:{self.redis_port}/0"

[database]
url = "postgresql+asyncpg://postgres@127.0.0.1:5432/{self.database}"

[directory]
backend = "sql"
seed_file = "{ROOT / 'demo' / 'directory.yaml'}"

[policy]
path = "{ROOT / 'policies' / 'portal.polar'}"
tests = "{ROOT / 'policies' / 'tests'}"
watch = false
decision_log = "{self.work_dir / 'decisions.jsonl'}"

[routes]
path = "{ROOT / 'config' / 'routes.toml'}"

[upstreams.portal]
url = "http://127.0.0.1:{self.backend_port}"

[auth]
demo = true

[sms]
sender = "outbox"
outbox_path = "{self.work_dir / 'sms-outbox.jsonl'}"
""")
        return config

    def _start_replica(self, replica: Replica, config: Path) -> None:
        exe = str(Path(sys.executable).parent / "portal-gateway")
        env = {"PORTAL_GATEWAY_SERVER__OPS_PORT": str(replica.ops_port)}
        replica.proc = self._spawn([exe, "serve", "--config", str(config), "--port", str(replica.port)],
                                   f"gateway-{replica.name}", env)
        _wait_http(f"http://127.0.0.1:{replica.ops_port}/_gateway/ready", 60, replica.proc)

    def _start_nginx(self) -> None:
        conf_dir = self.work_dir / "nginx"
        conf_dir.mkdir(exist_ok=True)
        servers = "\n".join(
            f"        server 127.0.0.1:{r.port} max_fails=1 fail_timeout=10s;" for r in self.replicas
        )
        (conf_dir / "nginx.conf").write_text(f"""\
worker_processes 1;
daemon off;
pid {conf_dir}/nginx.pid;
error_log {conf_dir}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {conf_dir}/body;
    proxy_temp_path {conf_dir}/proxy;
    fastcgi_temp_path {conf_dir}/fastcgi;
    uwsgi_temp_path {conf_dir}/uwsgi;
    scgi_temp_path {conf_dir}/scgi;
    upstream gateways {{
{servers}
        keepalive 32;
    }}
    server {{
        listen 127.0.0.1:{self.lb_port};
        location / {{
            proxy_pass http://gateways;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_set_header X-Forwarded-Proto $scheme;
            # A replica that dies mid-request: idempotent requests go to the other one.
            proxy_next_upstream error timeout http_502 http_503;
            proxy_next_upstream_tries 2;
            proxy_connect_timeout 1s;
        }}
    }}
}}
""")
        proc = self._spawn([_nginx(), "-e", str(conf_dir / "error.log"), "-p", str(conf_dir),
                            "-c", str(conf_dir / "nginx.conf")], "nginx")
        _wait_http(f"{self.url}/_gateway/health", 15, proc)

    def start(self) -> None:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        try:
            self._start_redis()
            self._psql(f'CREATE DATABASE "{self.database}"')
            config = self._write_config()
            self.replicas = [Replica("a", free_port(), free_port()), Replica("b", free_port(), free_port())]
            # The backend trusts the gateways' keys, fetched through the load balancer: any
            # replica serves the same JWKS because the key directory is shared.
            backend = self._spawn([sys.executable, "-m", "demo.backend", "--port", str(self.backend_port),
                                   "--jwks-url", f"{self.url}/.well-known/jwks.json", "--audience", "portal"],
                                  "backend")
            # One replica first: it runs the migrations and seeds the empty directory.
            for replica in self.replicas:
                self._start_replica(replica, config)
            self._start_nginx()
            _wait_http(f"http://127.0.0.1:{self.backend_port}/api/status", 15, backend)
        except BaseException:
            self.stop()
            raise

    def kill(self, name: str) -> None:
        """SIGKILL one replica: no graceful shutdown, as when its machine dies."""
        replica = next(r for r in self.replicas if r.name == name)
        assert replica.proc is not None
        replica.proc.kill()
        replica.proc.wait(10)

    def stop(self) -> None:
        for proc in reversed(self._procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in reversed(self._procs):
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        self._procs.clear()
        if self.drop_database:
            with contextlib.suppress(ClusterError, OSError):
                self._psql(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.cluster", description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default=str(ROOT / "var" / "cluster"), help="logs, config and the key directory")
    parser.add_argument("--port", type=int, default=8090, help="the load balancer's port")
    args = parser.parse_args(argv)
    cluster = Cluster(Path(args.dir), lb_port=args.port)
    try:
        cluster.start()
    except ClusterError as exc:
        print(f"make cluster: {exc}", file=sys.stderr)
        return 1
    print(f"""
portal-gateway cluster (Ctrl-C stops everything)
  load balancer (nginx)   {cluster.url}          e.g. curl {cluster.url}/api/status
  replica a               {cluster.replicas[0].url}   ops http://127.0.0.1:{cluster.replicas[0].ops_port}/_gateway/ready
  replica b               {cluster.replicas[1].url}   ops http://127.0.0.1:{cluster.replicas[1].ops_port}/_gateway/ready
  demo backend            http://127.0.0.1:{cluster.backend_port}
  Redis                   127.0.0.1:{cluster.redis_port}    PostgreSQL database {cluster.database}
  logs                    {args.dir}/*.log      SMS outbox {args.dir}/sms-outbox.jsonl
""", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        cluster.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
