"""Re-encrypt every tenant's shared secret with the newest key of SECRET_KEYS."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from connect_settings import crypto
from connect_settings.exceptions import SecretDecryptionError
from connect_settings.models import Tenant
from connect_settings.tenants import invalidate


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored shared secret with the first key of "
        "CONNECT_SETTINGS['SECRET_KEYS']; older keys can be dropped afterwards."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--batch-size", type=int, default=500)
        parser.add_argument(
            "--check", action="store_true", help="Only count secrets that decrypt; change nothing."
        )

    def handle(self, *args: Any, batch_size: int, check: bool, **options: Any) -> None:
        ids = list(Tenant.objects.order_by("pk").values_list("pk", flat=True))
        rotated = 0
        for start in range(0, len(ids), batch_size):
            chunk = ids[start : start + batch_size]
            with transaction.atomic():
                for tenant in Tenant.objects.select_for_update().filter(pk__in=chunk):
                    try:
                        new = crypto.rotate(tenant.shared_secret_encrypted)
                    except SecretDecryptionError as err:
                        raise CommandError(
                            f"Tenant {tenant.client_key}: {err} Nothing in this batch changed."
                        ) from err
                    if not check and new != tenant.shared_secret_encrypted:
                        tenant.shared_secret_encrypted = new
                        tenant.save(update_fields=["shared_secret_encrypted"])
                        invalidate(tenant.client_key)
                    rotated += 1
        verb = "decrypt with the configured keys" if check else "re-encrypted with the newest key"
        self.stdout.write(self.style.SUCCESS(f"{rotated} of {len(ids)} secrets {verb}."))
