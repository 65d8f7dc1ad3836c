"""Mirroring chosen settings to the host's app properties, through a transactional outbox.

Our database is the source of truth. A change to a mirrored setting updates one
``MirrorEntry`` per (tenant, property) in the same transaction as the setting (its
``version`` goes up); delivery runs as a task after commit. One delivery at a time holds a
lease on an entry, sends the newest version, and before releasing the lease (in the same
row-locked transaction) looks again: if a newer version arrived meanwhile it sends again. So
the host always ends at our latest value, saves never wait on HTTP, and a crashed worker's
lease simply expires.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.db.models import F, Q
from django.db.models.functions import Greatest
from django.utils import timezone

from .client import HostError, client_for
from .conf import connect_settings
from .exceptions import ConnectError
from .json_values import same_json
from .models import MirrorEntry, Tenant
from .properties import AppProperties, PropertyLimitError
from .signals import property_mirrored
from .tasks_compat import task, task_backends

logger = logging.getLogger("connect_settings.mirror")

MISSING: Any = object()
#: How long one delivery may hold an entry before another may take over (a crashed worker):
#: the default of MIRROR_LEASE_SECONDS, read through :func:`lease`.
LEASE = timedelta(seconds=120)
#: Deliveries of one entry in one go, at most (a bound even under a stream of saves).
MAX_ROUNDS = 10
#: How long after a lease ends its watchdog delivery runs (see :func:`deliver`).
LEASE_GRACE = timedelta(seconds=1)


@dataclass(frozen=True)
class MirrorSpec:
    """One mirrored property: ``setting`` (an AddonSetting key), optionally one ``field``."""

    property: str
    setting: str
    field: str | None = None

    def extract(self, value: Any) -> Any:
        """The property value for a setting value; MISSING deletes the property."""
        if value is MISSING:
            return MISSING
        if self.field is None:
            return value
        if isinstance(value, dict) and self.field in value:
            return value[self.field]
        return MISSING


def specs() -> list[MirrorSpec]:
    out = []
    for item in connect_settings.MIRROR:
        out.append(MirrorSpec(str(item["property"]), str(item["setting"]), item.get("field")))
    return out


def specs_for(setting_key: str) -> list[MirrorSpec]:
    return [s for s in specs() if s.setting == setting_key]


# --- writing the outbox (inside the caller's transaction) ---------------------------------


def record(tenant: Tenant, setting_key: str, value: Any) -> list[int]:
    """Queue the properties derived from ``setting_key`` = ``value`` (MISSING: deleted).

    Must run inside the transaction that writes the setting; returns the entry ids whose
    delivery was scheduled for after the commit.
    """
    changed: list[int] = []
    for spec in specs_for(setting_key):
        new = spec.extract(value)
        entry, created = MirrorEntry.objects.select_for_update().get_or_create(
            tenant_id=tenant.pk,
            property_key=spec.property,
            defaults={"value": None, "deleted": True, "version": 0},
        )
        deleted = new is MISSING
        same = (entry.deleted == deleted) and (deleted or same_json(entry.value, new))
        if same and entry.status == MirrorEntry.Status.SYNCED and not created:
            continue
        entry.value = None if deleted else new
        entry.deleted = deleted
        entry.version = F("version") + 1
        entry.status = MirrorEntry.Status.PENDING
        entry.attempts = 0
        entry.last_error = ""
        entry.next_attempt_at = timezone.now()
        # Only the fields a save owns: a delivery may be changing the lease concurrently.
        entry.save(
            update_fields=[
                "value",
                "deleted",
                "version",
                "status",
                "attempts",
                "last_error",
                "next_attempt_at",
                "updated_at",
            ]
        )
        changed.append(entry.pk)
    if changed:
        transaction.on_commit(lambda: enqueue(changed))
    return changed


def remirror_tenant(tenant: Tenant, *, delay: float = 0.0) -> list[int]:
    """Send every mirrored property of the tenant again (after a reinstall: new secret).

    Properties we never had are left alone. ``delay`` holds deliveries back: during the
    ``installed`` callback the host does not accept the new secret yet, so they wait for
    ``enabled`` (:func:`resume_tenant`) or, on a backend that can defer, for the delay.
    """
    from .models import AddonSetting

    wanted = specs()
    if not wanted:
        return []
    now = timezone.now()
    not_before = now + timedelta(seconds=delay)
    with transaction.atomic():
        values = dict(
            AddonSetting.objects.filter(
                tenant_id=tenant.pk, key__in={s.setting for s in wanted}
            ).values_list("key", "value")
        )
        known = set(
            MirrorEntry.objects.filter(tenant_id=tenant.pk).values_list("property_key", flat=True)
        )
        ids: list[int] = []
        for spec in wanted:
            if spec.extract(values.get(spec.setting, MISSING)) is MISSING and (
                spec.property not in known
            ):
                continue
            ids += force(
                tenant,
                spec.setting,
                values.get(spec.setting, MISSING),
                only=spec.property,
                schedule=False,
            )
        MirrorEntry.objects.filter(pk__in=ids).update(next_attempt_at=not_before)
        if ids:
            run_after = not_before if delay else None
            transaction.on_commit(lambda: enqueue(ids, run_after=run_after))
    return ids


def resume_tenant(tenant: Tenant, *, retry_failed: bool = False) -> list[int]:
    """Deliver the tenant's pending entries now, due or not (the host just enabled us, or a
    fresh Forge system token arrived); ``retry_failed`` gives failed entries a new start."""
    entries = MirrorEntry.objects.filter(tenant_id=tenant.pk)
    if retry_failed:
        entries.filter(status=MirrorEntry.Status.FAILED).update(
            status=MirrorEntry.Status.PENDING, attempts=0, next_attempt_at=timezone.now()
        )
    ids = list(entries.filter(status=MirrorEntry.Status.PENDING).values_list("pk", flat=True))
    enqueue(ids)
    return ids


def force(
    tenant: Tenant,
    setting_key: str,
    value: Any,
    only: str | None = None,
    schedule: bool = True,
) -> list[int]:
    """Like :func:`record`, but even for values the host already has (repair, reinstall);
    ``only`` limits it to one property; ``schedule=False`` leaves delivery to the caller."""
    ids = []
    for spec in specs_for(setting_key):
        if only is not None and spec.property != only:
            continue
        new = spec.extract(value)
        deleted = new is MISSING
        entry, _ = MirrorEntry.objects.select_for_update().get_or_create(
            tenant_id=tenant.pk,
            property_key=spec.property,
            defaults={"value": None, "deleted": True, "version": 0},
        )
        MirrorEntry.objects.filter(pk=entry.pk).update(
            value=None if deleted else new,
            deleted=deleted,
            version=F("version") + 1,
            status=MirrorEntry.Status.PENDING,
            attempts=0,
            last_error="",
            next_attempt_at=timezone.now(),
        )
        ids.append(entry.pk)
    if ids and schedule:
        transaction.on_commit(lambda: enqueue(ids))
    return ids


def repair(tenant: Tenant, spec: MirrorSpec) -> str:
    """Re-send one property now, from our current value; returns the delivery's status."""
    from .models import AddonSetting

    with transaction.atomic():
        row = AddonSetting.objects.filter(tenant_id=tenant.pk, key=spec.setting).first()
        value = row.value if row else MISSING
        ids = force(tenant, spec.setting, value, only=spec.property, schedule=False)
    return deliver(ids[0]) if ids else "skipped"


# --- delivery ------------------------------------------------------------------------------


def enqueue(entry_ids: list[int], run_after: Any = None) -> None:
    """Hand deliveries to the task backend; a backend error never fails the caller (the
    entries stay pending for ``connect_mirror --deliver``)."""
    for entry_id in entry_ids:
        try:
            alias = connect_settings.MIRROR_TASK_BACKEND
            if run_after is not None and not task_backends[alias].supports_defer:
                continue  # the backend cannot wait: `connect_mirror --deliver` picks it up
            deliver_task.using(backend=alias, run_after=run_after).enqueue(entry_id)
        except Exception:  # the save already committed; never fail it for the queue
            logger.exception("Could not enqueue the delivery of mirror entry %s", entry_id)


def _backoff(attempts: int) -> float:
    base = float(connect_settings.MIRROR_RETRY_BASE)
    delay = min(base * (2 ** (attempts - 1)), float(connect_settings.MIRROR_RETRY_CAP))
    return delay * (0.8 + 0.4 * random.random())  # noqa: S311 - jitter, not crypto


def lease() -> timedelta:
    return timedelta(seconds=float(connect_settings.MIRROR_LEASE_SECONDS))


def _take_lease(entry_id: int) -> MirrorEntry | None:
    # Compare-and-set rather than row locks, so SQLite (which has none) is as safe as PostgreSQL.
    now = timezone.now()
    taken = (
        MirrorEntry.objects.filter(pk=entry_id, status=MirrorEntry.Status.PENDING)
        .filter(Q(leased_until__isnull=True) | Q(leased_until__lte=now))
        .update(leased_until=now + lease())
    )
    return MirrorEntry.objects.filter(pk=entry_id).first() if taken else None


def _send(entry: MirrorEntry) -> ConnectError | None:
    tenant = Tenant.objects.filter(pk=entry.tenant_id).first()  # the current secret
    client = client_for(tenant) if tenant is not None else None
    if client is None:
        return ConnectError(
            "The tenant is uninstalled; delivery waits for a reinstall.",
            code="tenant_uninstalled",
        )
    try:
        props = AppProperties(tenant, client=client)
        if entry.deleted:
            props.delete(entry.property_key)
        else:
            props.put(entry.property_key, entry.value)
    except (HostError, PropertyLimitError) as err:
        return err
    return None


def _finish(entry: MirrorEntry, status: str) -> str:
    property_mirrored.send(
        sender=MirrorEntry,
        tenant_id=entry.tenant_id,
        property_key=entry.property_key,
        status=status,
        version=entry.version,
    )
    return status


def deliver(entry_id: int) -> str:
    """Deliver one entry until the host has our newest version; returns the final status.

    Each outcome is recorded only if the entry still holds the version that was sent; a
    newer save in between makes the loop send again, so the last value sent is the newest.
    """
    entry = _take_lease(entry_id)
    if entry is None:
        return "skipped"
    # A worker killed mid-delivery runs no more code, and the deliveries queued meanwhile were
    # skipped for its lease: a deferred delivery just after the lease ends takes over then
    # (and finds nothing to do if this one finished). Backends that cannot defer skip it;
    # there `connect_mirror --deliver` picks such entries up.
    if entry.leased_until is not None:
        enqueue([entry_id], run_after=entry.leased_until + LEASE_GRACE)
    pending = MirrorEntry.objects.filter(pk=entry_id)
    for _ in range(MAX_ROUNDS):
        sent = entry.version
        error = _send(entry)
        now = timezone.now()
        if error is None:
            if pending.filter(version=sent).update(
                status=MirrorEntry.Status.SYNCED,
                attempts=0,
                last_error="",
                leased_until=None,
                next_attempt_at=None,
                delivered_version=sent,
                delivered_at=now,
            ):
                entry.status = MirrorEntry.Status.SYNCED
                return _finish(entry, entry.status)
            pending.update(
                delivered_version=Greatest(F("delivered_version"), sent), delivered_at=now
            )
            entry = pending.get()
            continue  # a newer value arrived while we were sending: send that too
        attempts = entry.attempts + 1
        permanent = isinstance(error, PropertyLimitError) or error.code == "tenant_uninstalled"
        failed = permanent or attempts >= int(connect_settings.MIRROR_MAX_ATTEMPTS)
        wait = max(float(getattr(error, "retry_after", None) or 0), _backoff(attempts))
        next_attempt = None if failed else now + timedelta(seconds=wait)
        status = MirrorEntry.Status.FAILED if failed else MirrorEntry.Status.PENDING
        recorded = pending.filter(version=sent).update(
            attempts=attempts,
            status=status,
            last_error=f"{error.code}: {error.message}"[:2000],
            next_attempt_at=next_attempt,
            leased_until=None,
        )
        logger.warning(
            "Mirroring %s for tenant %s failed (attempt %s): %s",
            entry.property_key,
            entry.tenant_id,
            attempts,
            error.code,
        )
        if not recorded:  # a newer value arrived meanwhile: it deserves a fresh try now
            pending.update(leased_until=None)
            enqueue([entry_id])
            return "pending"
        if not failed:
            enqueue([entry_id], run_after=next_attempt)
        entry.version = sent
        return _finish(entry, status)
    # Still changing after MAX_ROUNDS sends: let a fresh task carry on.
    pending.update(leased_until=None)
    enqueue([entry_id])
    return "pending"


@task()
def deliver_task(entry_id: int) -> str:
    return deliver(entry_id)


def due_entries(client_key: str | None = None) -> list[int]:
    """Pending entries whose next attempt is due and whose lease (if any) has expired."""
    now = timezone.now()
    query = (
        MirrorEntry.objects.filter(status=MirrorEntry.Status.PENDING)
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
        .filter(Q(leased_until__isnull=True) | Q(leased_until__lte=now))
    )
    if client_key:
        query = query.filter(tenant__client_key=client_key)
    return list(query.values_list("pk", flat=True))


def status_for(tenant: Tenant) -> dict[str, dict[str, Any]]:
    """Per property: ``{"status", "attempts", "error", "version", "delivered_version"}``."""
    rows = MirrorEntry.objects.filter(tenant_id=tenant.pk).order_by("property_key")
    return {
        row.property_key: {
            "status": row.status,
            "attempts": row.attempts,
            "error": row.last_error or None,
            "version": row.version,
            "delivered_version": row.delivered_version,
            "updated_at": row.updated_at.isoformat() if row.updated_at else None,
        }
        for row in rows
    }
