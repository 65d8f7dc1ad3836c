"""The tenant cache is shared by workers and invalidated for all of them.

A second worker runs as a real separate process (``tenant_cache_worker.py``) on the same
database and the same cache backend: Redis when one answers on 127.0.0.1:6379, a file-based
cache otherwise. After a reinstall, an uninstall or a key rotation committed here, that worker
must see the new row at once, without any process-local copy standing in its way.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection
from redis_support import redis_answers

from connect_settings import lifecycle
from connect_settings.configuration import save_configuration
from connect_settings.testing import install_payload, make_tenant

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

WORKER = Path(__file__).with_name("tenant_cache_worker.py")
CLIENT_KEY = "cache-client-key"


@pytest.fixture
def shared_cache(settings: Any, tmp_path: Path) -> dict[str, Any]:
    if redis_answers():
        import uuid

        # A key prefix of our own: the Redis database may be shared with other runs.
        config = {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:6379/12",
            "KEY_PREFIX": f"test-{uuid.uuid4().hex}",
        }
    else:
        config = {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(tmp_path / "cache"),
        }
    settings.CACHES = {**settings.CACHES, "tenants": config}
    settings.CONNECT_SETTINGS = {**settings.CONNECT_SETTINGS, "TENANT_CACHE": "tenants"}
    return config


class Worker:
    """Another process of the same app: ``get`` asks it for a tenant through the cache."""

    def __init__(self, cache: dict[str, Any], secret_keys: list[str]) -> None:
        db = {k: connection.settings_dict[k] for k in ("NAME", "USER", "PASSWORD", "HOST", "PORT")}
        root = str(Path(__file__).resolve().parent.parent)
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])),
            "DJANGO_SETTINGS_MODULE": "demo_project.settings",
            "WORKER_DATABASE": json.dumps(db),
            "WORKER_CACHE": json.dumps(cache),
            "WORKER_SECRET_KEYS": json.dumps(secret_keys),
        }
        self.proc = subprocess.Popen(
            [sys.executable, str(WORKER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
            cwd=root,
        )

    def get(self, client_key: str) -> dict[str, Any] | None:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(client_key + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the worker process ended (exit code {self.proc.poll()})")
        answer: dict[str, Any] | None = json.loads(line)
        return answer

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


@pytest.fixture
def worker(shared_cache: dict[str, Any], settings: Any) -> Iterator[Worker]:
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: run with DATABASE_URL=postgres://... (CI does)")
    keys = [f"derived-from-SECRET_KEY:{settings.SECRET_KEY}"]
    settings.CONNECT_SETTINGS = {**settings.CONNECT_SETTINGS, "SECRET_KEYS": keys}
    process = Worker(shared_cache, keys)
    try:
        yield process
    finally:
        process.close()


def warm(worker: Worker) -> dict[str, Any]:
    """Look the tenant up until the worker holds it locally (when its cache allows that)."""
    first = worker.get(CLIENT_KEY)
    assert first is not None and first["queries"] == 1  # cold: one indexed query
    again = worker.get(CLIENT_KEY)
    assert again is not None and again["queries"] == 0  # warm: no tenant query
    if redis_answers():
        assert again["local_copies"] == 1  # and a copy of its own, so no Redis round trip
    return again


def test_other_worker_reads_through_the_shared_cache_without_a_query(worker: Worker) -> None:
    make_tenant(CLIENT_KEY)
    warm(worker)
    third = worker.get(CLIENT_KEY)
    assert third is not None and third["queries"] == 0


def test_reinstall_is_seen_by_the_other_worker_at_once(worker: Worker) -> None:
    tenant = make_tenant(CLIENT_KEY)
    assert warm(worker)["ciphertext"] == tenant.shared_secret_encrypted
    lifecycle.install(install_payload(CLIENT_KEY, sharedSecret="a-brand-new-shared-secret-" * 2))
    seen = worker.get(CLIENT_KEY)
    assert seen is not None
    assert seen["ciphertext"] != tenant.shared_secret_encrypted
    assert seen["secret"] == "a-brand-new-shared-secret-" * 2


def test_uninstall_is_seen_by_the_other_worker_at_once(worker: Worker) -> None:
    make_tenant(CLIENT_KEY)
    assert warm(worker)["installed"] is True
    lifecycle.uninstall(CLIENT_KEY)
    assert worker.get(CLIENT_KEY)["installed"] is False  # type: ignore[index]


def test_key_rotation_is_seen_by_the_other_worker_at_once(worker: Worker, settings: Any) -> None:
    tenant = make_tenant(CLIENT_KEY)
    before = warm(worker)
    assert before["ciphertext"] == tenant.shared_secret_encrypted
    old = settings.CONNECT_SETTINGS["SECRET_KEYS"]
    settings.CONNECT_SETTINGS = {
        **settings.CONNECT_SETTINGS,
        "SECRET_KEYS": ["a-new-encryption-key-for-rotation-0123456789", *old],
    }
    call_command("connect_rotate_keys", stdout=io.StringIO())
    after = worker.get(CLIENT_KEY)
    assert after is not None
    assert after["ciphertext"] != before["ciphertext"]
    tenant.refresh_from_db()
    assert after["ciphertext"] == tenant.shared_secret_encrypted


def test_a_save_is_seen_by_the_other_worker_s_page_at_once(worker: Worker) -> None:
    tenant = make_tenant(CLIENT_KEY)
    save_configuration(tenant, {"team_name": "Ops"})
    warm(worker)
    assert worker.get(f"state {CLIENT_KEY}")["queries"] == 1  # type: ignore[index]
    again = worker.get(f"state {CLIENT_KEY}")
    assert again is not None and again["version"] == 1
    # With Redis, the worker keeps the state it read: no query.
    assert again["queries"] == (0 if redis_answers() else 1)
    save_configuration(tenant, {"team_name": "Platform"}, version=1)
    seen = worker.get(f"state {CLIENT_KEY}")
    assert seen is not None and seen["version"] == 2
    assert seen["stored"]["team_name"] == "Platform" and seen["queries"] == 1
