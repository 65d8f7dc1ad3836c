"""Regression: a mirroring worker killed mid-delivery left its entry pending for good when
the task backend was a real queue (django-tasks-db): nothing ran the entry again, and the
deliveries of saves made meanwhile were skipped for the dead worker's lease. Every delivery
now queues a deferred one for just after its lease ends."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from connect_settings import mirror, store
from connect_settings.models import MirrorEntry
from connect_settings.testing import make_tenant

pytestmark = pytest.mark.django_db


class Killed(BaseException):
    """Stands for SIGKILL: no except clause of ours runs."""


@pytest.fixture
def queued(settings: Any) -> None:
    settings.CONNECT_SETTINGS = {
        **settings.CONNECT_SETTINGS,
        "MIRROR": [{"property": "feature-flags", "setting": "flags"}],
        "MIRROR_TASK_BACKEND": "database",  # a queue that can defer, like production's
        "MIRROR_LEASE_SECONDS": 30.0,
    }


def _ready_runs(entry_id: int) -> list[Any]:
    from django_tasks_db.models import DBTaskResult

    # Tasks queued without run_after carry django-tasks-db's "no date" (year 9999).
    return sorted(
        task.run_after
        for task in DBTaskResult.objects.filter(status="READY")
        if task.args_kwargs["args"] == [entry_id] and task.run_after.year < 9999
    )


def test_killed_delivery_is_taken_over_after_its_lease(queued: None, monkeypatch: Any) -> None:
    tenant = make_tenant()
    store.set("flags", {"v": 1}, tenant.client_key)
    entry = MirrorEntry.objects.get()

    def killed(entry: MirrorEntry) -> None:
        raise Killed

    monkeypatch.setattr(mirror, "_send", killed)
    with pytest.raises(Killed):
        mirror.deliver(entry.pk)
    entry.refresh_from_db()
    assert entry.status == "pending" and entry.leased_until is not None
    assert entry.leased_until - timezone.now() > timedelta(seconds=25)  # MIRROR_LEASE_SECONDS
    # A save meanwhile: its delivery is skipped while the dead worker's lease lasts...
    store.set("flags", {"v": 2}, tenant.client_key)
    assert mirror.deliver(entry.pk) == "skipped"
    # ...but a delivery was queued for just after that lease.
    watchdog = [run for run in _ready_runs(entry.pk) if run > timezone.now()]
    assert watchdog and watchdog[0] >= entry.leased_until
    # When it runs (the lease over), it delivers the newest value.
    MirrorEntry.objects.filter(pk=entry.pk).update(leased_until=timezone.now())
    sent: list[Any] = []
    monkeypatch.setattr(mirror, "_send", lambda e: sent.append(e.value))
    assert mirror.deliver(entry.pk) == "synced"
    assert sent == [{"v": 2}]
