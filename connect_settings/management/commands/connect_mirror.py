"""Compare mirrored settings with the host's app properties; deliver, repair, report."""

from __future__ import annotations

import json
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Q

from connect_settings import mirror
from connect_settings.client import HostError, client_for
from connect_settings.models import AddonSetting, MirrorEntry, Tenant
from connect_settings.properties import AppProperties

_ABSENT: Any = object()


def _short(value: Any, width: int = 32) -> str:
    if value is _ABSENT or value is mirror.MISSING:
        return "(absent)"
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text if len(text) <= width else text[: width - 1] + "…"


class Command(BaseCommand):
    help = (
        "Compare every installed tenant's mirrored settings with the host's app properties "
        "and report drift in a table (exit status 1 while anything is out of sync). "
        "--repair re-sends what drifted; --deliver runs pending deliveries that are due."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", metavar="CLIENT_KEY", help="Only this tenant.")
        parser.add_argument(
            "--check", action="store_true", help="Only compare and report (the default)."
        )
        parser.add_argument("--repair", action="store_true", help="Re-send what drifted.")
        parser.add_argument(
            "--deliver", action="store_true", help="Deliver due pending entries first."
        )

    def handle(
        self,
        *args: Any,
        tenant: str | None,
        check: bool,
        repair: bool,
        deliver: bool,
        **options: Any,
    ) -> None:
        if check and repair:
            raise CommandError("--check only reports; use --repair alone to repair.")
        specs = mirror.specs()
        if not specs:
            self.stdout.write("Nothing is mirrored (CONNECT_SETTINGS['MIRROR'] is empty).")
            return
        if deliver:
            due = mirror.due_entries(tenant)
            for entry_id in due:
                mirror.deliver(entry_id)
            self.stdout.write(f"Delivered {len(due)} due entr{'y' if len(due) == 1 else 'ies'}.")

        # Tenants reachable as Connect apps or through Forge (after the move, a tenant's
        # Connect version may be gone while its Forge installation carries on).
        tenants = (
            Tenant.objects.filter(Q(installed=True) | Q(forge_installations__isnull=False))
            .distinct()
            .order_by("client_key")
        )
        if tenant:
            tenants = tenants.filter(client_key=tenant)
            if not tenants.exists():
                raise CommandError("No installed tenant has that client key.")
        total = tenants.count()
        rows: list[tuple[str, str, str, str, str]] = []
        out_of_sync = 0
        for index, current in enumerate(tenants.iterator(), start=1):
            if total > 20 and (index % 20 == 0 or index == total):
                self.stderr.write(f"  checked {index}/{total} tenants")
            for spec, ours, theirs, state in self._compare(current, specs):
                if state != "in sync" and repair:
                    mirror.repair(current, spec)
                    ((_, ours, theirs, state),) = self._compare(current, [spec])
                    if state == "in sync":
                        state = "repaired"
                if state not in ("in sync", "repaired"):
                    out_of_sync += 1
                rows.append(
                    (current.client_key, spec.property, _short(ours), _short(theirs), state)
                )
        self._table(rows)
        if out_of_sync:
            self.stderr.write(
                self.style.ERROR(
                    f"{out_of_sync} propert{'y is' if out_of_sync == 1 else 'ies are'} out of sync."
                )
            )
            sys.exit(1)
        self.stdout.write(self.style.SUCCESS(f"All {len(rows)} mirrored properties in sync."))

    def _compare(self, tenant: Tenant, specs: list[mirror.MirrorSpec]) -> list[tuple[Any, ...]]:
        settings = dict(
            AddonSetting.objects.filter(
                tenant_id=tenant.pk, key__in={s.setting for s in specs}
            ).values_list("key", "value")
        )
        entries = {e.property_key: e for e in MirrorEntry.objects.filter(tenant_id=tenant.pk)}
        client = client_for(tenant)
        props = AppProperties(tenant, client=client) if client is not None else None
        out = []
        for spec in specs:
            ours = spec.extract(settings.get(spec.setting, mirror.MISSING))
            error: str | None = None
            theirs = _ABSENT
            if props is None:
                error = "no_route"
            else:
                try:
                    theirs = props.get(spec.property, default=_ABSENT)
                except HostError as err:
                    error = err.code
            if error is not None:
                state = f"unreachable ({error})"
            elif (ours is mirror.MISSING) == (theirs is _ABSENT) and (
                ours is mirror.MISSING or ours == theirs
            ):
                state = "in sync"
            else:
                entry = entries.get(spec.property)
                state = "drift" + (f" ({entry.status})" if entry else "")
            out.append((spec, ours, theirs, state))
        return out

    def _table(self, rows: list[tuple[str, str, str, str, str]]) -> None:
        header = ("tenant", "property", "ours", "host", "state")
        widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(5)]
        line = "  ".join(f"{{:<{w}}}" for w in widths)
        self.stdout.write(line.format(*header))
        self.stdout.write(line.format(*("-" * w for w in widths)))
        for row in rows:
            self.stdout.write(line.format(*row))
