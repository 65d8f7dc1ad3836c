"""Processes, databases, tokens and the load generator shared by the benchmark scripts.

Every process is started in its own session (process group) and killed as a group, also when
the runner fails; every wait is a bounded poll.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
ACE_DIR = BENCH / "ace_app"
RESULTS = BENCH / "results"
TMP = RESULTS / "tmp"
VENV_BIN = Path(sys.executable).parent

PG_ADMIN_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/11")
APP_KEY = "com.example.connect-settings-bench"
#: Fixed so runs are repeatable; it only encrypts the benchmark's own throwaway secrets.
FERNET_KEY = "YmVuY2gta2V5LWJlbmNoLWtleS1iZW5jaC1rZXktMDE="
TENANT_BASE_URL = "https://example.atlassian.net"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- processes -------------------------------------------------------------------------------


def group_rss_kib(pgid: int) -> int:
    """Resident memory of every process in a process group, in KiB (Linux /proc)."""
    total = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
            # Field 5 (after the parenthesised command, which may hold spaces) is the pgrp.
            if int(stat.rsplit(")", 1)[1].split()[2]) != pgid:
                continue
            for line in Path(entry.path, "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except (OSError, ValueError, IndexError):
            continue  # the process ended while we looked
    return total


def _processes_cpu_seconds(
    wanted: Callable[[str, list[str]], bool], *, reaped: bool = False
) -> float:
    """User + system CPU time used so far by the live processes ``wanted(name, fields)``
    picks (``fields``: /proc/<pid>/stat after the name), and with ``reaped`` that of their
    children which ended and were waited for."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            head, _, tail = Path(entry.path, "stat").read_text().rpartition(")")
            fields = tail.split()
            if wanted(head.partition("(")[2], fields):
                total += int(fields[11]) + int(fields[12])  # utime, stime
                if reaped:
                    total += int(fields[13]) + int(fields[14])  # cutime, cstime
        except (OSError, ValueError, IndexError):
            continue
    return total / ticks


def group_cpu_seconds(pgid: int) -> float:
    """User + system CPU time used so far by the live processes of a process group."""
    return _processes_cpu_seconds(lambda _name, fields: int(fields[2]) == pgid)


def database_cpu_seconds() -> float:
    """CPU time used so far by the PostgreSQL server (both sides' backends: only one side
    runs at a time). Backends and workers that ended count through the postmaster, which
    reaps them."""
    return _processes_cpu_seconds(lambda name, _fields: name == "postgres", reaped=True)


def machine_ticks() -> tuple[int, int]:
    """(all, idle) clock ticks of every core so far, for a busy fraction over a run."""
    return _cpu_times()


def _cpu_times() -> tuple[int, int]:
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values), idle


def machine_busy(window: float = 1.0) -> float:
    """Fraction of all cores busy over ``window`` seconds (0.0 - 1.0)."""
    total0, idle0 = _cpu_times()
    time.sleep(window)  # the measurement window itself
    total1, idle1 = _cpu_times()
    return 1.0 - (idle1 - idle0) / max(total1 - total0, 1)


def wait_for_quiet(max_busy: float, timeout: float) -> float:
    """Wait (bounded) until other work leaves the cores mostly idle; the last busy fraction.

    The machine may be shared: a run that starts while something else burns the cores says
    little, so runs wait for a quiet second, and each run records what it started with.
    """
    deadline = time.monotonic() + timeout
    busy = machine_busy()
    while busy > max_busy and time.monotonic() < deadline:
        busy = machine_busy()
    return busy


@dataclass
class Service:
    """A server process in its own process group, logging to a file."""

    name: str
    argv: list[str]
    env: Mapping[str, str]
    cwd: Path
    health_url: str
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log_path = TMP / f"{self.name}.log"

    def start(self, timeout: float = 60.0) -> Service:
        TMP.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        try:
            self.proc = subprocess.Popen(
                self.argv,
                cwd=self.cwd,
                env={**os.environ, **self.env},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            log.close()
        wait_http(self.health_url, timeout, process=self.proc, name=self.name)
        return self

    @property
    def pgid(self) -> int:
        assert self.proc is not None
        return self.proc.pid  # start_new_session: the leader's pid is the group id

    def rss_kib(self) -> int:
        return group_rss_kib(self.pgid) if self.proc else 0

    def cpu_seconds(self) -> float:
        return group_cpu_seconds(self.pgid) if self.proc else 0.0

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pgid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pgid, signal.SIGKILL)
            self.proc.wait(timeout=15)
        # Workers that outlived their leader belong to the same group.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pgid, signal.SIGKILL)


def wait_http(
    url: str, timeout: float, *, process: subprocess.Popen[bytes] | None = None, name: str = ""
) -> None:
    """Poll ``url`` until it answers 200, the process exits, or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{name or url} exited with {process.returncode} while starting")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.1)  # a poll interval, not synchronisation
    raise RuntimeError(f"{name or url} not ready after {timeout:.0f} s")


class ServiceGroup:
    """Stops every registered service on exit, on an exception and on SIGTERM/SIGINT."""

    def __init__(self) -> None:
        self.services: list[Service] = []

    def add(self, service: Service) -> Service:
        self.services.append(service)
        return service

    def stop_all(self) -> None:
        for service in reversed(self.services):
            with contextlib.suppress(Exception):
                service.stop()
        self.services.clear()

    def __enter__(self) -> ServiceGroup:
        def on_signal(signum: int, frame: Any) -> None:
            raise KeyboardInterrupt(f"signal {signum}")

        signal.signal(signal.SIGTERM, on_signal)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop_all()


class RssSampler:
    """The highest resident memory of a service seen while the block runs."""

    def __init__(self, service: Service, interval: float = 0.25) -> None:
        self.service = service
        self.interval = interval
        self.peak_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_kib = max(self.peak_kib, self.service.rss_kib())
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.peak_kib = max(self.peak_kib, self.service.rss_kib())


# --- PostgreSQL and Redis ----------------------------------------------------------------------


def recreate_database(name: str) -> str:
    """Drop and create a scratch database; returns its URL."""
    import psycopg

    if not name.startswith("bench_"):
        raise ValueError("only bench_* scratch databases are dropped")
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"


def flush_redis() -> None:
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()


# --- the Django side ---------------------------------------------------------------------------


def django_env(db_url: str, base_url: str, key_server_url: str) -> dict[str, str]:
    return {
        "DJANGO_SETTINGS_MODULE": "bench.settings",
        "PYTHONPATH": str(ROOT),
        "DJANGO_DEBUG": "false",
        "DJANGO_SECRET_KEY": "bench-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        # Persistent connections, as production runs PostgreSQL.
        "DATABASE_URL": f"{db_url}?conn_max_age=600",
        # ... and prepared statements: a query is parsed and planned once per connection.
        "DATABASE_PREPARED_STATEMENTS": "true",
        "CACHE_URL": REDIS_URL,
        "CONNECT_APP_KEY": APP_KEY,
        "CONNECT_BASE_URL": base_url,
        "CONNECT_INSTALL_KEY_SERVERS": key_server_url,
        "CONNECT_SECRET_KEYS": FERNET_KEY,
    }


def migrate(env: Mapping[str, str]) -> None:
    subprocess.run(
        [str(VENV_BIN / "python"), "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=ROOT,
        env={**os.environ, **env},
        check=True,
        timeout=300,
    )


@dataclass(frozen=True)
class OursSetup:
    db: str
    port: int
    base: str
    env: dict[str, str]


def prepare_ours(key_url: str) -> OursSetup:
    """A fresh ``bench_ours`` database, migrated, an empty Redis, and a free port for our app
    (for the scripts that run our side alone)."""
    db = recreate_database("bench_ours")
    flush_redis()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = dict(django_env(db, base, key_url))
    migrate(env)
    return OursSetup(db, port, base, env)


def gunicorn_service(
    port: int, env: Mapping[str, str], *, workers: int, worker_class: str, threads: int
) -> Service:
    argv = [
        str(VENV_BIN / "gunicorn"),
        "demo_project.wsgi:application",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        "--worker-class",
        worker_class,
        "--threads",
        str(threads),
        "--preload",  # workers share the imported code pages (lower RSS)
        "--log-level",
        "warning",
    ]
    return Service("ours", argv, env, ROOT, f"http://127.0.0.1:{port}/health")


# --- the ACE side ------------------------------------------------------------------------------


def ensure_ace_installed() -> None:
    """Install the pinned ACE app (package-lock.json) into bench/ace_app/node_modules."""
    marker = ACE_DIR / "node_modules" / "atlassian-connect-express" / "package.json"
    if marker.exists() and json.loads(marker.read_text())["version"] == "11.5.3":
        return
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is needed for the ACE reference app")
    subprocess.run(
        [npm, "ci", "--omit=optional", "--no-audit", "--no-fund"],
        cwd=ACE_DIR,
        check=True,
        timeout=600,
    )


def ace_service(port: int, db_url: str, key_server_url: str, workers: int) -> Service:
    node = shutil.which("node")
    if node is None:
        raise RuntimeError("node is needed for the ACE reference app")
    env = {
        "NODE_ENV": "production",
        "PORT": str(port),
        "DB_URL": db_url,
        "CONNECT_KEYS_CDN_URL": key_server_url,
        "ACE_WORKERS": str(workers),
    }
    return Service("ace", [node, "app.js"], env, ACE_DIR, f"http://127.0.0.1:{port}/health")


# --- tokens ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BenchTenant:
    client_key: str
    secret: str

    def payload(self) -> dict[str, Any]:
        return {
            "key": APP_KEY,
            "clientKey": self.client_key,
            "sharedSecret": self.secret,
            "baseUrl": TENANT_BASE_URL,
            "displayUrl": TENANT_BASE_URL,
            "productType": "jira",
            "description": "Atlassian JIRA at https://example.atlassian.net",
            "serverVersion": "100000",
            "pluginsVersion": "1001.0.0",
            "serviceEntitlementNumber": "SEN-1",
            "eventType": "installed",
        }


def make_tenants(count: int, prefix: str = "bench-tenant") -> list[BenchTenant]:
    return [
        BenchTenant(f"{prefix}-{i:06d}", f"bench-shared-secret-{i:06d}-{'x' * 32}")
        for i in range(count)
    ]


#: Query parameters a product adds to a page module's URL (PROTOCOL.md section 4).
PAGE_QUERY = (
    "xdm_e=https%3A%2F%2Fexample.atlassian.net&xdm_c=channel-configure&cp="
    f"&xdm_deprecated_addon_key_do_not_use={APP_KEY}&lic=none&cv=1001.0.0"
)


def page_path(tenant: BenchTenant, ttl: int, path: str = "/configure") -> str:
    """``path?<product params>&jwt=<page token>``: a page load as the product sends it."""
    from connect_settings.jwt.canonical import query_string_hash
    from connect_settings.jwt.tokens import mint_hs256

    qsh = query_string_hash("GET", path, PAGE_QUERY)
    claims = {"iss": tenant.client_key, "sub": "557058:bench-user", "qsh": qsh, "context": {}}
    return f"{path}?{PAGE_QUERY}&jwt={mint_hs256(claims, tenant.secret, ttl=ttl)}"


def session_token(tenant: BenchTenant, ttl: int, *, now: float | None = None) -> str:
    """An app session token (``X-acpt``) as both sides mint them; both accept it."""
    from connect_settings.jwt.tokens import mint_hs256

    claims = {
        "iss": APP_KEY,
        "sub": "557058:bench-user",
        "aud": [tenant.client_key],
        "context": {},
    }
    return mint_hs256(claims, tenant.secret, ttl=ttl, now=now)


def session_tokens(tenant: BenchTenant, ttl: int, count: int) -> list[str]:
    """``count`` distinct session tokens, issued one second apart (the newest now): what a
    page that swaps in each answer's ``X-acpt`` sends over ``count`` seconds."""
    now = int(time.time())
    return [session_token(tenant, ttl, now=now - k) for k in range(count)]


def install_token(tenant: BenchTenant, private_key: Any, kid: str, app_base_url: str) -> str:
    from connect_settings.jwt.canonical import query_string_hash
    from connect_settings.jwt.tokens import mint_rs256

    claims = {
        "iss": tenant.client_key,
        "aud": [app_base_url],
        "qsh": query_string_hash("POST", "/installed", ""),
        "context": {},
    }
    return mint_rs256(claims, private_key, kid=kid, ttl=900)


def http(
    method: str, url: str, body: bytes | None = None, headers: Mapping[str, str] | None = None
) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, method=method, headers=dict(headers or {}))
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


# --- the load generator ------------------------------------------------------------------------


@dataclass(frozen=True)
class Req:
    method: str
    path: str
    authorization: str = ""
    body: str = ""
    #: Authorizations to send in turn, the next one every wall-clock second (replay.lua), as a
    #: page does that swaps in each answer's X-acpt; ``authorization`` is sent otherwise.
    rotate: tuple[str, ...] = ()

    def line(self) -> str:
        auth = "|".join(self.rotate) if self.rotate else self.authorization
        for part in (self.path, auth, self.body):
            if "\t" in part or "\n" in part:
                raise ValueError("requests for replay.lua cannot hold tabs or newlines")
        if self.rotate and any("|" in a for a in self.rotate):
            raise ValueError("rotated authorizations cannot hold '|'")
        return f"{self.method}\t{self.path}\t{auth}\t{self.body}"


def write_requests(path: Path, requests: list[Req]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(r.line() for r in requests) + "\n")
    return path


def wrk(
    base_url: str, requests_file: Path, *, connections: int, duration: float, threads: int = 1
) -> dict[str, Any]:
    """One wrk run replaying ``requests_file``; the figures replay.lua prints."""
    exe = shutil.which("wrk")
    if exe is None:
        raise RuntimeError("wrk is needed: apt-get install -y wrk")
    argv = [
        exe,
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(duration))}s",  # wrk takes whole seconds only
        "--timeout",
        "10s",
        "-s",
        str(BENCH / "lua" / "replay.lua"),
        base_url,
        "--",
        str(requests_file),
    ]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60, check=True)
    for line in out.stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            figures: dict[str, Any] = json.loads(line[len("BENCH_JSON ") :])
            seconds = figures["duration_us"] / 1e6
            figures["rps"] = figures["requests"] / seconds if seconds else 0.0
            figures["error_count"] = sum(figures["errors"].values())
            return figures
    raise RuntimeError(f"wrk printed no figures:\n{out.stdout}\n{out.stderr}")


@contextlib.contextmanager
def key_server(kid: str) -> Iterator[tuple[str, Any]]:
    """A real install-key server on 127.0.0.1 (the host's role) serving one RS256 key."""
    from connect_settings.testing import KeyServer

    server = KeyServer().start()
    try:
        yield server.url, server.add_key(kid)
    finally:
        server.stop()
