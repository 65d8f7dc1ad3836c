"""Writing ACE's tenants and settings into ours: one transaction per tenant.

What wins where both sides hold a tenant (the policy ``connect_import_ace --help`` states):

- A tenant unknown here is created, installed and enabled, with ACE's shared secret.
- A tenant whose shared secret here equals ACE's is the same installation: its clientInfo
  fields and settings are brought up to date from ACE.
- A tenant whose secret differs, or that was uninstalled here, had a lifecycle event on one
  side after the other's last write. ACE's row replaces it only when it is provably newer:
  the table has ``updatedAt`` and it is later than our ``secret_rotated_at``, or the operator
  says ACE still serves the app (``ace_is_live``, before the cut-over). Otherwise the tenant
  is kept whole and reported: after the cut-over a reinstall here holds the current secret,
  and overwriting it with ACE's older one would fail every request of that tenant.
- A setting is created when missing and replaced when it differs, except where ACE's row
  has ``updatedAt`` and ours was written later (then ours is kept and reported). Keys that
  only exist here are left alone.

Settings are written through ``store.set``, the one write path of the package, so an
imported setting has every effect of any other write (``setting_changed`` on commit, the
mirroring outbox) without a second copy of that logic to drift. It costs two or three
queries per written key; the import keeps that to the keys that differ by comparing each
tenant's settings first (one locked read per tenant), which is also the diff a dry run
prints. Keys and values are validated up front with the store's own checks (:mod:`.rows`),
so a bad value is one reported row rather than a failed tenant. Lifecycle signals are not
sent: an import is not an install.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.db import DatabaseError, IntegrityError, transaction
from django.utils import timezone

from ..exceptions import SecretDecryptionError
from ..lifecycle import PAYLOAD_FIELDS
from ..models import AddonSetting, Tenant
from ..store import set as store_set
from ..tenants import invalidate
from .report import ImportReport, TenantOutcome
from .rows import AceTenant, read_tenant
from .source import AceSource


@dataclass(frozen=True)
class ImportOptions:
    dry_run: bool = False
    #: ACE still receives the installs (before the cut-over): its secrets are the newest.
    ace_is_live: bool = False


@dataclass
class _Plan:
    outcome: TenantOutcome
    tenant: Tenant | None = None
    save_tenant: bool = False
    new_settings: list[tuple[str, Any]] = field(default_factory=list)
    changed_settings: list[tuple[str, Any]] = field(default_factory=list)


def json_equal(a: Any, b: Any) -> bool:
    """Equal as JSON documents: ``True`` is not ``1``, but ``1e21`` is ``10**21`` (jsonb)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def _when(moment: Any) -> str:
    return f"{moment:%Y-%m-%d %H:%M:%S} UTC"


def _keep_reason(ace: AceTenant, tenant: Tenant, same_secret: bool) -> str | None:
    """Why ``tenant`` must stay as it is here, or None when ACE's row may replace it."""
    if same_secret and tenant.installed:
        return None
    if not same_secret:
        event, ours = "its shared secret here differs from ACE's", tenant.secret_rotated_at
        if not tenant.installed and tenant.uninstalled_at:
            ours = max(ours, tenant.uninstalled_at)
    else:
        event, ours = "it was uninstalled here", tenant.uninstalled_at or tenant.secret_rotated_at
    ace_time = ace.info_row.updated_at
    if ace_time is not None and ace_time > ours:
        return None
    if ace_time is None:
        return (
            f"{event}, and ACE's table records no times to show that its row is newer "
            "(pass --ace-is-live if ACE still serves the app)"
        )
    return f"{event} (here: {_when(ours)}; ACE's row: {_when(ace_time)})"


def plan_tenant(
    ace: AceTenant,
    tenant: Tenant | None,
    current: dict[str, AddonSetting],
    options: ImportOptions,
) -> _Plan:
    """What importing ``ace`` changes; ``tenant`` (modified in memory only) and ``current``
    are what this database holds now."""
    now = timezone.now()
    info = ace.info_row
    values = {attr: ace.payload.get(name) or "" for name, attr in PAYLOAD_FIELDS.items()}
    if tenant is None:
        tenant = Tenant(
            client_key=ace.client_key,
            installed=True,
            enabled=True,
            installed_at=info.created_at or now,
            secret_rotated_at=info.updated_at or now,
            **values,
        )
        tenant.shared_secret = ace.shared_secret
        outcome = TenantOutcome(ace.client_key, "created", settings_created=sorted(ace.settings))
        new = [(key, s.value) for key, s in sorted(ace.settings.items())]
        return _Plan(outcome, tenant, save_tenant=True, new_settings=new)

    # compare_digest: no early exit on the first differing character of a secret.
    same_secret = hmac.compare_digest(
        tenant.shared_secret.encode("utf-8"), ace.shared_secret.encode("utf-8")
    )
    reason = None if options.ace_is_live else _keep_reason(ace, tenant, same_secret)
    if reason is not None:
        outcome = TenantOutcome(ace.client_key, "kept", reason=reason)
        outcome.settings_skipped = len(ace.settings)
        return _Plan(outcome)

    plan = _Plan(TenantOutcome(ace.client_key, "unchanged"), tenant)
    outcome = plan.outcome
    for name, attr in PAYLOAD_FIELDS.items():
        if getattr(tenant, attr) != values[attr]:
            setattr(tenant, attr, values[attr])
            outcome.fields.append(name)
    if not same_secret:
        tenant.shared_secret = ace.shared_secret
        tenant.secret_rotated_at = info.updated_at or now
        outcome.fields.append("sharedSecret")
    if not same_secret or not tenant.installed:
        # A reinstall happened in ACE: installed and enabled again, as lifecycle.install does.
        if not tenant.installed:
            tenant.installed_at = info.created_at or now
            outcome.fields.append("installed")
        elif not tenant.enabled:
            outcome.fields.append("enabled")
        tenant.installed = True
        tenant.enabled = True
        tenant.uninstalled_at = None
    plan.save_tenant = bool(outcome.fields)

    for key, setting in sorted(ace.settings.items()):
        row = current.get(key)
        ace_time = setting.row.updated_at
        if row is None:
            plan.new_settings.append((key, setting.value))
            outcome.settings_created.append(key)
        elif json_equal(row.value, setting.value):
            outcome.settings_unchanged += 1
        elif ace_time is not None and row.updated_at > ace_time and not options.ace_is_live:
            outcome.settings_kept[key] = (
                f"changed here at {_when(row.updated_at)}, after ACE's row "
                f"(updatedAt {_when(ace_time)})"
            )
        else:
            plan.changed_settings.append((key, setting.value))
            outcome.settings_updated.append(key)
    if outcome.fields or outcome.settings_created or outcome.settings_updated:
        outcome.action = "updated"
    return plan


def _apply(plan: _Plan) -> None:
    tenant = plan.tenant
    assert tenant is not None
    if plan.save_tenant:
        if tenant.pk is None:
            # A concurrent install of the same clientKey makes this an IntegrityError: the
            # tenant is then reported as failed and the next run sees the installed one.
            tenant.save(force_insert=True)
        else:
            tenant.save()
        invalidate(tenant.client_key)  # now and on commit: a cached miss or old secret goes
    for key, value in [*plan.new_settings, *plan.changed_settings]:
        store_set(key, value, tenant.client_key)


def import_tenant(ace: AceTenant, options: ImportOptions) -> TenantOutcome:
    """Plan and (unless a dry run) apply one tenant, all or nothing."""
    try:
        with transaction.atomic():
            tenants = Tenant.objects.filter(client_key=ace.client_key)
            if not options.dry_run:
                # Serialise with lifecycle events and store writes for this tenant.
                tenants = tenants.select_for_update()
            tenant = tenants.first()
            current: dict[str, AddonSetting] = {}
            if tenant is not None:
                settings = AddonSetting.objects.filter(tenant_id=tenant.pk)
                if not options.dry_run:
                    settings = settings.select_for_update()
                current = {s.key: s for s in settings}
            plan = plan_tenant(ace, tenant, current, options)
            if (
                not options.dry_run
                and plan.tenant is not None
                and plan.outcome.action != "unchanged"
            ):
                _apply(plan)
            return plan.outcome
    except SecretDecryptionError:
        reason = "the shared secret stored here does not decrypt with SECRET_KEYS"
    except IntegrityError:
        reason = "changed concurrently while importing (IntegrityError); run again"
    except DatabaseError as err:
        # The class only: a driver message may quote the data being written.
        reason = f"database error ({type(err).__name__})"
    except BaseException:
        invalidate(ace.client_key)
        raise
    # store.set cached the tenant as this transaction saw it: forget what was rolled back.
    invalidate(ace.client_key)
    outcome = TenantOutcome(ace.client_key, "failed", reason=reason)
    outcome.settings_skipped = len(ace.settings)
    return outcome


class Importer:
    """Runs an import over an open :class:`AceSource`; :attr:`report` holds the result so
    far (also after an interruption)."""

    def __init__(self, source: AceSource, options: ImportOptions) -> None:
        self.source = source
        self.options = options
        self.report = ImportReport(
            source=source.display_url, table=source.table, dry_run=options.dry_run
        )

    def run(
        self,
        *,
        progress: Callable[[int, int], None] | None = None,
        on_tenant: Callable[[TenantOutcome], None] | None = None,
    ) -> ImportReport:
        report = self.report
        report.rows_total = self.source.count()
        try:
            for client_key, rows in self.source.tenants():
                ace = read_tenant(client_key, rows, report)
                if ace is not None:
                    outcome = import_tenant(ace, self.options)
                    report.record(outcome)
                    if on_tenant is not None:
                        on_tenant(outcome)
                report.rows_read += len(rows)
                if progress is not None:
                    progress(report.rows_read, report.rows_total)
        except KeyboardInterrupt:
            report.interrupted = True  # tenants done so far are committed; the current one not
            raise
        return report
