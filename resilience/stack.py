"""The system under test, on loopback: PostgreSQL, gunicorn, mirroring workers, host emulators.

Every process is started in its own process group and killed as a group on the way out, on
failure too; every wait is a poll of a condition with a deadline. PostgreSQL is a private
throwaway cluster (initdb in a temporary directory, a free port) whenever this machine can
make one, so that restarting it disturbs nobody; otherwise the server at
``RESILIENCE_POSTGRES_URL``, which only CI (``CI=true``) or ``RESILIENCE_RESTART_SYSTEM_POSTGRES=1``
may restart, and which is always started again afterwards.

The runner process itself is a Django process too (same settings, same database): it seeds
tenants and reads back what was stored through the ORM.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Resident memory of a process group: the benchmark harness measures it the same way.
from bench.harness import group_rss_kib

ROOT = Path(__file__).resolve().parent.parent
LOGS = ROOT / "test-artifacts" / "resilience"
FERNET_KEY = "cmVzaWxpZW5jZS1rZXktcmVzaWxpZW5jZS1rZXktMDE="
FORGE_APP_ID = "ari:cloud:ecosystem::app/00000000-1111-2222-3333-444444444444"

__all__ = ["FORGE_APP_ID", "Postgres", "Process", "Stack", "free_port", "poll", "postgres"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def poll(condition: Callable[[], Any], timeout: float, interval: float = 0.05) -> Any:
    """``condition()``'s first truthy value within ``timeout`` seconds, else None."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            return None
        time.sleep(interval)  # the poll interval, not a synchronisation


def ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


# --- processes ---------------------------------------------------------------------------------


@dataclass
class Process:
    """A child in its own process group, logging to ``test-artifacts/resilience/<name>.log``."""

    name: str
    argv: list[str]
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def log_path(self) -> Path:
        return LOGS / f"{self.name}.log"

    def start(self) -> Process:
        LOGS.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(  # noqa: S603 - our own argv
                self.argv,
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.starts += 1
        return self

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal_group(self, sig: int) -> None:
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, sig)

    def kill(self) -> None:
        """SIGKILL the whole group at once (what a crash or the OOM killer does)."""
        if self.proc is None:
            return
        self.signal_group(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.signal_group(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        self.kill()  # whatever of the group outlived its leader

    def rss_kib(self) -> int:
        return group_rss_kib(self.proc.pid) if self.alive and self.proc else 0

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


# --- PostgreSQL ----------------------------------------------------------------------------------


class Postgres:
    """A PostgreSQL server the suites may create databases on and restart."""

    kind = "system"
    host = "127.0.0.1"
    port = 5432
    user = "postgres"

    def admin_url(self, database: str = "postgres") -> str:
        return f"postgres://{self.user}@{self.host}:{self.port}/{database}"

    def connect(self, database: str = "postgres") -> Any:
        import psycopg

        url = self.admin_url(database).replace("postgres://", "postgresql://", 1)
        return psycopg.connect(url, autocommit=True, connect_timeout=5)

    def is_up(self) -> bool:
        try:
            self.connect().close()
        except Exception:
            return False
        return True

    def create_database(self, name: str) -> None:
        with self.connect() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')

    def drop_database(self, name: str) -> None:
        with contextlib.suppress(Exception), self.connect() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    # Overridden below; the system server only restarts where that is allowed.
    def can_restart(self) -> str:
        return ""

    def stop(self) -> None:
        raise NotImplementedError

    def start(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass


def _as_postgres(argv: list[str]) -> list[str]:
    # initdb and pg_ctl refuse to run as root: run them as the postgres system user.
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *argv]
    return argv


def _pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


class PrivatePostgres(Postgres):
    """A throwaway cluster: initdb into a temporary directory, served on a free port."""

    kind = "private"

    def __init__(self) -> None:
        bindir = _pg_bin()
        if bindir is None:
            raise RuntimeError("no initdb found under /usr/lib/postgresql")
        self.bindir = bindir
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="resilience-pg-"))
        self.data = self.dir / "data"
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        self._run(
            [
                str(bindir / "initdb"),
                "-D",
                str(self.data),
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-sync",
            ]
        )
        self.start()

    def _run(self, argv: list[str], timeout: float = 60.0) -> None:
        subprocess.run(  # noqa: S603 - our own argv
            _as_postgres(argv), check=True, capture_output=True, timeout=timeout
        )

    def _pg_ctl(self, *args: str) -> None:
        self._run([str(self.bindir / "pg_ctl"), "-D", str(self.data), *args])

    def start(self) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.dir} -c max_connections=200"
        )
        self._pg_ctl("-o", options, "-l", str(self.dir / "server.log"), "-w", "-t", "60", "start")

    def stop(self) -> None:
        self._pg_ctl("-m", "fast", "-w", "-t", "60", "stop")

    def can_restart(self) -> str:
        return ""

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._pg_ctl("-m", "immediate", "-w", "-t", "30", "stop")
        shutil.rmtree(self.dir, ignore_errors=True)


class SystemPostgres(Postgres):
    """The machine's cluster (``RESILIENCE_POSTGRES_URL``); restarted only where allowed."""

    def __init__(self, url: str) -> None:
        from urllib.parse import urlsplit

        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 5432
        self.user = parts.username or "postgres"
        self.version = (
            next(iter(sorted(os.listdir("/etc/postgresql"))), "")
            if Path("/etc/postgresql").is_dir()
            else ""
        )

    def can_restart(self) -> str:
        if not self.version:
            return "no /etc/postgresql cluster to restart"
        if ci() or os.environ.get("RESILIENCE_RESTART_SYSTEM_POSTGRES") == "1":
            return ""
        return (
            "restarting the shared PostgreSQL would break other suites: set CI=true or "
            "RESILIENCE_RESTART_SYSTEM_POSTGRES=1"
        )

    def _ctl(self, action: str) -> None:
        subprocess.run(  # noqa: S603 - the documented command
            ["pg_ctlcluster", "--skip-systemctl-redirect", self.version, "main", action],  # noqa: S607
            check=True,
            capture_output=True,
            timeout=120,
        )

    def stop(self) -> None:
        self._ctl("stop")

    def start(self) -> None:
        if not self.is_up():
            self._ctl("start")

    def close(self) -> None:
        # Whatever happened, the shared server is left running.
        if self.version and not self.is_up():
            with contextlib.suppress(Exception):
                self._ctl("start")


def postgres() -> Postgres:
    """A private cluster if this machine can make one (``RESILIENCE_POSTGRES=private``), else
    the system server (``RESILIENCE_POSTGRES=system``, ``RESILIENCE_POSTGRES_URL``)."""
    choice = os.environ.get("RESILIENCE_POSTGRES", "auto")
    url = os.environ.get("RESILIENCE_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    can_private = _pg_bin() is not None and (
        os.geteuid() == 0 or os.environ.get("USER") == "postgres"
    )
    if choice == "private" or (choice == "auto" and can_private):
        return PrivatePostgres()
    return SystemPostgres(url)


# --- the stack -----------------------------------------------------------------------------------


@dataclass
class Stack:
    """PostgreSQL + gunicorn (+ db_worker) + host emulators + a key server, all on loopback.

    Use as a context manager; ``emulators`` Jira sites are started on fixed ports (so they can
    be stopped and started again on the same address).
    """

    suite: str
    emulators: int = 1
    gunicorn_workers: int = 2
    gunicorn_threads: int = 4
    db_workers: int = 0
    tasks_backend: str = "database"
    env_extra: dict[str, str] = field(default_factory=dict)
    pg: Postgres | None = None
    database: str = ""
    port: int = 0
    sites: list[Any] = field(default_factory=list)
    key_server: Any = None
    gunicorn: Process | None = None
    workers: list[Process] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    _supervise: threading.Event = field(default_factory=threading.Event)
    worker_restarts: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Stack:
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _start(self) -> None:
        from connect_settings.host import Emulator
        from connect_settings.testing import KeyServer

        self.pg = postgres()
        self.database = f"resilience_{self.suite}_{os.getpid()}"
        self.pg.create_database(self.database)
        self.port = free_port()
        self.key_server = KeyServer().start()
        for _ in range(self.emulators):
            site = Emulator("jira", port=free_port(), timeout=10.0).start()
            self.sites.append(site)
        key_servers = [self.key_server.url, *(s.key_server_url for s in self.sites)]
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "resilience.settings",
            "DATABASE_URL": self.pg.admin_url(self.database),
            "CONNECT_BASE_URL": self.url,
            "CONNECT_INSTALL_KEY_SERVERS": ",".join(key_servers),
            "CONNECT_SECRET_KEYS": FERNET_KEY,
            "TASKS_BACKEND": self.tasks_backend,
            "RESILIENCE_FORGE_APP_ID": FORGE_APP_ID,
            "RESILIENCE_FORGE_JWKS_URLS": self.key_server.jwks_url,
            "PYTHONUNBUFFERED": "1",
            **self.env_extra,
        }
        # This process reads and seeds the same database through the ORM.
        os.environ.update(self.env)
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0, interactive=False)
        self.start_gunicorn()
        for i in range(self.db_workers):
            self.workers.append(self._worker(i).start())
        if self.db_workers:
            threading.Thread(target=self._supervisor, daemon=True).start()

    # gunicorn ----------------------------------------------------------------------------------

    def start_gunicorn(self) -> None:
        argv = [
            sys.executable,
            "-m",
            "gunicorn",
            "demo_project.wsgi:application",
            "--bind",
            f"127.0.0.1:{self.port}",
            "--workers",
            str(self.gunicorn_workers),
            "--threads",
            str(self.gunicorn_threads),
            "--worker-class",
            "gthread",
            "--timeout",
            "60",
            "--graceful-timeout",
            "5",
            "--access-logfile",
            "-",
            "--access-logformat",
            "%(s)s %(m)s %(U)s %(L)s",
        ]
        # gunicorn 25+ opens a control socket at one path per user: ours would take over
        # another instance's (a benchmark's, a developer's). Older versions have none.
        from gunicorn.config import KNOWN_SETTINGS

        if any(s.name == "control_socket_disable" for s in KNOWN_SETTINGS):
            argv.append("--no-control-socket")
        self.gunicorn = Process(f"{self.suite}-gunicorn", argv, self.env).start()
        if not poll(self._healthy, 60, 0.1):
            tail = self.gunicorn.log_tail()
            raise RuntimeError(f"gunicorn did not come up on {self.url}:\n{tail}")

    def _healthy(self) -> bool:
        from .rawhttp import request

        if self.gunicorn is None or not self.gunicorn.alive:
            tail = self.gunicorn.log_tail() if self.gunicorn else ""
            raise RuntimeError(f"gunicorn exited while starting:\n{tail}")
        return request(self.url, "GET", "/health", timeout=2).status == 200

    def gunicorn_rss_kib(self) -> int:
        return self.gunicorn.rss_kib() if self.gunicorn else 0

    # mirroring workers -------------------------------------------------------------------------

    def _worker(self, index: int) -> Process:
        argv = [
            sys.executable,
            "manage.py",
            "db_worker",
            # Deliveries are queued on MIRROR_TASK_BACKEND ("default"), which
            # TASKS_BACKEND=database makes django-tasks-db's backend.
            "--backend",
            "default",
            "--no-startup-delay",
            "--no-reload",
            "--interval",
            "0.1",
        ]
        return Process(f"{self.suite}-worker{index}", argv, self.env)

    def _supervisor(self) -> None:
        # django-tasks-db's worker exits when it loses its database connection (as it does
        # while PostgreSQL restarts); production runs it under a supervisor, and so does this.
        while not self._supervise.wait(0.2):
            for worker in self.workers:
                if worker.proc is not None and not worker.alive and worker.proc.returncode != -9:
                    if self.pg is not None and self.pg.is_up():
                        self.worker_restarts += 1
                        worker.start()

    def restart_worker(self, index: int = 0) -> None:
        self.workers[index].start()

    # manage.py ---------------------------------------------------------------------------------

    def manage(self, *args: str, timeout: float = 120.0) -> tuple[int, str]:
        done = subprocess.run(  # noqa: S603 - our own argv
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        return done.returncode, done.stdout + done.stderr

    def close_db(self) -> None:
        """Drop this process's database connections (after a restart, before new queries)."""
        with contextlib.suppress(Exception):
            from django.db import connections

            connections.close_all()

    def close(self) -> None:
        self._supervise.set()
        for worker in self.workers:
            worker.stop()
        if self.gunicorn is not None:
            self.gunicorn.stop()
        for site in self.sites:
            with contextlib.suppress(Exception):
                site.stop()
        if self.key_server is not None:
            with contextlib.suppress(Exception):
                self.key_server.stop()
        self.close_db()
        if self.pg is not None:
            with contextlib.suppress(Exception):
                if self.pg.kind != "private":
                    self.pg.start()  # never leave a shared server down
                self.pg.drop_database(self.database)
            self.pg.close()


@contextlib.contextmanager
def timed() -> Iterator[Callable[[], float]]:
    started = time.monotonic()
    yield lambda: time.monotonic() - started
