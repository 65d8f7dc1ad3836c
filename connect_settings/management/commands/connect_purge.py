"""Delete tenants (and their settings) uninstalled longer than the retention period."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.utils import timezone

from connect_settings.conf import connect_settings
from connect_settings.models import Tenant


class Command(BaseCommand):
    help = "Delete data of tenants uninstalled more than UNINSTALLED_RETENTION_DAYS days ago."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--days", type=int, default=None, help="Override the retention days.")
        parser.add_argument("--dry-run", action="store_true", help="Only list what would go.")

    def handle(self, *args: Any, days: int | None, dry_run: bool, **options: Any) -> None:
        keep = connect_settings.UNINSTALLED_RETENTION_DAYS if days is None else days
        cutoff = timezone.now() - timedelta(days=keep)
        doomed = Tenant.objects.filter(installed=False, uninstalled_at__lt=cutoff)
        count = doomed.count()
        for client_key in doomed.values_list("client_key", flat=True)[:50]:
            self.stdout.write(f"  {client_key}")
        if dry_run:
            self.stdout.write(f"{count} tenant(s) would be purged (uninstalled > {keep} days).")
            return
        doomed.delete()
        self.stdout.write(
            self.style.SUCCESS(f"{count} tenant(s) purged (uninstalled > {keep} days).")
        )
