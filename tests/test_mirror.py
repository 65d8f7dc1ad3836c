"""Mirroring settings to app properties: outbox, delivery, retries, repair (over real HTTP)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from connect_settings import mirror, store
from connect_settings.models import MirrorEntry, Tenant
from connect_settings.signals import property_mirrored

MIRROR = [
    {"property": "colour", "setting": "appSettings", "field": "colour"},
    {"property": "feature-flags", "setting": "flags"},
]


@pytest.fixture
def mirrored(settings: Any) -> None:
    settings.CONNECT_SETTINGS = {
        **settings.CONNECT_SETTINGS,
        "MIRROR": MIRROR,
        "HTTP_BACKOFF_FACTOR": 0.01,
        "HTTP_RETRY_MAX_WAIT": 3.0,
        "HTTP_TIMEOUT": 2.0,
        "MIRROR_RETRY_BASE": 0.01,
        "MIRROR_MAX_ATTEMPTS": 3,
    }


def _run_mirror(*args: str) -> tuple[int, str]:
    out, err = StringIO(), StringIO()
    try:
        call_command("connect_mirror", *args, stdout=out, stderr=err)
        code = 0
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    return code, out.getvalue() + err.getvalue()


@contextmanager
def delivered(property_key: str, status: str = "synced") -> Iterator[None]:
    """Wait (bounded) for a delivery of ``property_key`` ending in ``status``, which may run in
    the live server's thread after a lifecycle answer was sent."""
    done = threading.Event()

    def receiver(**kwargs: Any) -> None:
        if kwargs["property_key"] == property_key and kwargs["status"] == status:
            done.set()

    property_mirrored.connect(receiver)
    try:
        yield
        assert done.wait(15), f"no {status} delivery of {property_key}"
    finally:
        property_mirrored.disconnect(receiver)


def _entry(tenant: Tenant, key: str) -> MirrorEntry:
    return MirrorEntry.objects.get(tenant=tenant, property_key=key)


@pytest.mark.parametrize("product", ["jira", "confluence"])
def test_change_reaches_host_after_commit(connect_live_install, mirrored, product):
    emulator, tenant = connect_live_install(product)
    store.set("appSettings", {"colour": "blue", "apiToken": "s3cret"}, tenant.client_key)
    store.set("flags", {"beta": True}, tenant.client_key)
    store.set("unmirrored", 1, tenant.client_key)
    assert emulator.properties() == {"colour": "blue", "feature-flags": {"beta": True}}
    entry = _entry(tenant, "colour")
    assert (entry.status, entry.version, entry.delivered_version) == ("synced", 1, 1)
    # Only the mirrored field leaves: the secret never does.
    assert "s3cret" not in str(emulator.properties())
    store.set("appSettings", {"apiToken": "s3cret"}, tenant.client_key)  # field removed
    store.delete("flags", tenant.client_key)
    assert emulator.properties() == {}
    assert _run_mirror("--check")[0] == 0


def test_unchanged_value_is_not_resent(connect_live_install, mirrored):
    emulator, tenant = connect_live_install()
    store.set("appSettings", {"colour": "blue", "x": 1}, tenant.client_key)
    tripwire = emulator.add_fault(delay=0.001, count=100)  # counts REST calls
    store.set("appSettings", {"colour": "blue", "x": 2}, tenant.client_key)
    assert _entry(tenant, "colour").version == 1
    assert tripwire.remaining == 100


def test_429_retry_after_then_success(connect_live_install, mirrored):
    emulator, tenant = connect_live_install()
    emulator.add_fault(429, count=1, retry_after=1, method="PUT")
    store.set("flags", ["a"], tenant.client_key)
    assert emulator.properties() == {"feature-flags": ["a"]}
    assert _entry(tenant, "feature-flags").status == "synced"


def test_repeated_503_fails_then_repair_converges(connect_live_install, mirrored):
    emulator, tenant = connect_live_install()
    emulator.add_fault(503, count=1000, method="PUT")
    store.set("flags", {"v": 1}, tenant.client_key)  # the save itself succeeds
    assert store.get("flags", tenant.client_key) == {"v": 1}
    entry = _entry(tenant, "feature-flags")
    assert entry.status == "pending" and entry.attempts == 1
    assert "503" in entry.last_error
    # The immediate backend cannot defer: the sweep retries what is due until attempts run out.
    for _ in range(3):
        MirrorEntry.objects.filter(pk=entry.pk).update(next_attempt_at=None)
        _run_mirror("--deliver")
    entry.refresh_from_db()
    assert entry.status == "failed" and entry.attempts == 3
    code, output = _run_mirror("--check")
    assert code == 1 and "drift (failed)" in output
    emulator.clear_faults()
    code, output = _run_mirror("--repair")
    assert code == 0, output
    assert "repaired" in output
    assert emulator.properties() == {"feature-flags": {"v": 1}}
    assert _entry(tenant, "feature-flags").status == "synced"


def test_host_down_during_saves_loses_nothing(connect_live_install, mirrored):
    emulator, tenant = connect_live_install()
    emulator.add_fault(drop=True, count=1000)
    for i in range(3):
        store.set("flags", {"v": i}, tenant.client_key)
    assert store.get("flags", tenant.client_key) == {"v": 2}
    assert emulator.properties() == {}
    emulator.clear_faults()
    assert _run_mirror("--repair")[0] == 0
    assert emulator.properties() == {"feature-flags": {"v": 2}}


def test_reinstall_rotates_secret_and_remirrors(connect_live_install, mirrored):
    emulator, tenant = connect_live_install()
    store.set("flags", {"v": 1}, tenant.client_key)
    emulator.set_property("feature-flags", "tampered")  # someone wrote it through AP.request
    with delivered("feature-flags"):
        emulator.reinstall()
    # The reinstall re-sent everything with the new secret, undoing the tampering.
    assert emulator.properties() == {"feature-flags": {"v": 1}}
    store.set("flags", {"v": 2}, tenant.client_key)
    assert emulator.properties() == {"feature-flags": {"v": 2}}


def test_uninstalled_tenant_is_not_mirrored(connect_live_install, mirrored, settings):
    emulator, tenant = connect_live_install()
    store.set("flags", {"v": 1}, tenant.client_key)
    emulator.uninstall()
    store.set("flags", {"v": 2}, tenant.client_key)
    entry = _entry(tenant, "feature-flags")
    assert entry.status == "failed" and "uninstalled" in entry.last_error
    assert emulator.properties(tenant.addon_key) == {"feature-flags": {"v": 1}}
    with delivered("feature-flags"):
        emulator.install(settings.CONNECT_SETTINGS["BASE_URL"])
    assert emulator.properties() == {"feature-flags": {"v": 2}}


def test_overlapping_delivery_sends_the_newest(connect_live_install, mirrored):
    emulator, tenant = connect_live_install()
    store.set("flags", {"v": 1}, tenant.client_key)
    entry = _entry(tenant, "feature-flags")
    # A delivery holds the lease; saves meanwhile are queued behind it and skipped...
    MirrorEntry.objects.filter(pk=entry.pk).update(
        leased_until=mirror.timezone.now() + mirror.LEASE
    )
    store.set("flags", {"v": 2}, tenant.client_key)
    assert emulator.properties() == {"feature-flags": {"v": 1}}
    # ...until the lease runs out (a crashed worker): the sweep then delivers the latest.
    MirrorEntry.objects.filter(pk=entry.pk).update(leased_until=mirror.timezone.now())
    _run_mirror("--deliver")
    assert emulator.properties() == {"feature-flags": {"v": 2}}


def test_check_reports_drift_and_tenant_filter(connect_live_install, mirrored):
    emulator, tenant = connect_live_install()
    store.set("flags", {"v": 1}, tenant.client_key)
    emulator.set_property("feature-flags", {"v": "changed on the host"})
    code, output = _run_mirror("--check", "--tenant", tenant.client_key)
    assert code == 1
    assert "feature-flags" in output and "drift" in output
    with pytest.raises(CommandError, match="No installed tenant"):
        _run_mirror("--tenant", "nobody")
    with pytest.raises(CommandError, match="--check only reports"):
        _run_mirror("--check", "--repair")


def test_secret_field_marked_for_mirroring_is_a_check_error(settings):
    from django.core.management.base import SystemCheckError

    from connect_settings.forms import configure_form_class, secret_field_names

    secret = sorted(secret_field_names(configure_form_class()))[0]
    settings.CONNECT_SETTINGS = {
        **settings.CONNECT_SETTINGS,
        "MIRROR": [{"property": "leak", "setting": "appSettings", "field": secret}],
    }
    with pytest.raises(SystemCheckError, match="E013"):
        call_command("check", stdout=StringIO(), stderr=StringIO())


@pytest.mark.parametrize(
    ("mirror_config", "code"),
    [
        ([{"property": "k" * 128, "setting": "s"}], "E011"),
        ([{"property": "a", "setting": "s"}, {"property": "a", "setting": "t"}], "E012"),
        ([{"setting": "s"}], "E010"),
        ([{"property": f"p{i}", "setting": "s"} for i in range(101)], "E014"),
    ],
)
def test_mirror_config_checks(settings, mirror_config, code):
    from django.core.management.base import SystemCheckError

    settings.CONNECT_SETTINGS = {**settings.CONNECT_SETTINGS, "MIRROR": mirror_config}
    with pytest.raises(SystemCheckError, match=code):
        call_command("check", stdout=StringIO(), stderr=StringIO())


@pytest.mark.postgres
def test_concurrent_saves_with_a_worker_backend(connect_live_install, mirrored, settings):
    """Many writers, deliveries through django-tasks-db and two real worker processes: the
    host ends at our final value."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from django.db import connection, connections

    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: run with DATABASE_URL=postgres://... (CI does)")
    emulator, tenant = connect_live_install()
    settings.CONNECT_SETTINGS = {**settings.CONNECT_SETTINGS, "MIRROR_TASK_BACKEND": "database"}

    barrier = threading.Barrier(6, timeout=30)
    errors: list[BaseException] = []

    def writer(i: int) -> None:
        try:
            barrier.wait()
            for n in range(10):
                store.set("flags", {"writer": i, "n": n}, tenant.client_key)
        except BaseException as err:  # asserted below
            errors.append(err)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors and not any(t.is_alive() for t in threads)
    assert emulator.properties() == {}  # nothing delivered yet: the queue holds it

    db = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "DJANGO_SETTINGS_MODULE": "demo_project.settings",
    }
    root = Path(__file__).resolve().parents[1]
    command = [
        sys.executable,
        "manage.py",
        "db_worker",
        "--batch",
        "--no-startup-delay",
        "--backend",
        "database",
        "--no-reload",
    ]
    workers = [
        subprocess.Popen(
            command, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        for _ in range(2)
    ]
    outputs = [w.communicate(timeout=120)[0].decode() for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outputs

    final = store.get("flags", tenant.client_key)
    assert emulator.properties() == {"feature-flags": final}
    entry = _entry(tenant, "feature-flags")
    assert entry.status == "synced" and entry.delivered_version == entry.version


def test_admin_shows_status_and_mirrors_now(connect_live_install, mirrored, admin_client):
    emulator, tenant = connect_live_install()
    emulator.add_fault(503, count=1000, method="PUT")
    store.set("flags", {"v": 7}, tenant.client_key)
    response = admin_client.get("/admin/connect_settings/mirrorentry/?status__exact=pending")
    assert response.status_code == 200
    body = response.content.decode()
    assert "feature-flags" in body and "host_error" in body
    assert tenant.shared_secret not in body
    emulator.clear_faults()
    response = admin_client.post(
        "/admin/connect_settings/tenant/",
        {"action": "mirror_tenants_now", "_selected_action": [tenant.pk]},
        follow=True,
    )
    # Both mirrored properties were re-sent (the absent "colour" as a delete).
    assert "Mirrored: 2 synced" in response.content.decode()
    assert emulator.properties() == {"feature-flags": {"v": 7}}
    entry = _entry(tenant, "feature-flags")
    emulator.set_property("feature-flags", "drifted")
    response = admin_client.post(
        "/admin/connect_settings/mirrorentry/",
        {"action": "mirror_now", "_selected_action": [entry.pk]},
        follow=True,
    )
    assert "Mirrored: 1 synced" in response.content.decode()
    assert emulator.properties() == {"feature-flags": {"v": 7}}


def test_configure_save_mirrors_fields_and_reports_status(connect_live_install, settings):
    """The demo's mirrored configure fields: the save answer and the page show the status."""
    import json

    from connect_settings.auth import mint_session_token
    from connect_settings.testing import signed_url

    settings.CONNECT_SETTINGS = {
        **settings.CONNECT_SETTINGS,
        "MIRROR": [
            {"property": "escalation-notify", "setting": "appSettings", "field": "notify"},
            {"property": "projects", "setting": "appSettings", "field": "project_keys"},
        ],
    }
    emulator, tenant = connect_live_install()
    from django.test import Client

    client = Client()
    token = mint_session_token(tenant, "557058:admin")
    values = {
        "team_name": "Ops",
        "default_priority": "high",
        "notify": False,
        "results_per_page": 10,
        "channels": ["email"],
        "project_keys": ["OPS", "SUP"],
        "api_token": "tok-123-secret",
    }
    response = client.post(
        "/configure",
        data=json.dumps({"values": values, "version": 0}),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"JWT {token}",
    )
    assert response.status_code == 200, response.content
    answer = response.json()
    assert answer["mirror"]["escalation-notify"]["status"] == "synced"
    assert answer["mirror"]["projects"]["status"] == "synced"
    assert emulator.properties() == {"escalation-notify": False, "projects": ["OPS", "SUP"]}
    assert "tok-123-secret" not in json.dumps(emulator.properties())
    page = client.get(
        signed_url(
            tenant.client_key,
            tenant.shared_secret,
            "/configure?xdm_e=http%3A%2F%2F127.0.0.1&lic=none",
        )
    )
    assert page.status_code == 200
    body = page.content.decode()
    assert 'data-property="escalation-notify" data-status="synced"' in body
