"""What installed / uninstalled / enabled / disabled do to tenants.

Each transition locks the tenant row, so ``disabled`` and ``uninstalled`` arriving together
serialise; each is idempotent; each returns the signal to send once the answer is out.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.dispatch import Signal
from django.utils import timezone

from . import mirror, signals
from .conf import connect_settings
from .models import Tenant
from .tenants import invalidate

logger = logging.getLogger("connect_settings.lifecycle")

#: Install payload field -> Tenant attribute (PROTOCOL.md section 3).
PAYLOAD_FIELDS: dict[str, str] = {
    "key": "addon_key",
    "baseUrl": "base_url",
    "displayUrl": "display_url",
    "displayUrlServicedeskHelpCenter": "display_url_servicedesk_help_center",
    "productType": "product_type",
    "description": "description",
    "serverVersion": "server_version",
    "pluginsVersion": "plugins_version",
    "serviceEntitlementNumber": "service_entitlement_number",
    "entitlementId": "entitlement_id",
    "entitlementNumber": "entitlement_number",
    "oauthClientId": "oauth_client_id",
    "installationId": "installation_id",
}


@dataclass
class Outcome:
    """The tenant after a transition and the signal (with arguments) to send afterwards."""

    tenant: Tenant | None
    signal: Signal | None = None
    extra: dict[str, Any] | None = None

    def sender(self) -> Callable[[], None] | None:
        """Sends the signal; a failing receiver is logged (type only) and does not stop
        the others."""
        if self.signal is None or self.tenant is None:
            return None
        signal, tenant, extra = self.signal, self.tenant, self.extra or {}

        def send() -> None:
            for receiver, result in signal.send_robust(sender=Tenant, tenant=tenant, **extra):
                if isinstance(result, Exception):
                    logger.error(
                        "Lifecycle signal receiver %r failed: %s",
                        receiver,
                        type(result).__name__,
                        exc_info=result,
                    )

        return send


def _locked(client_key: str) -> Tenant | None:
    """The tenant's row, locked until the transaction ends; None when there is none."""
    # get() rather than first(): client_key is unique, and first() would sort by it (the
    # model's ordering), which costs more to compile than the rest of the query.
    try:
        return Tenant.objects.select_for_update().get(client_key=client_key)
    except Tenant.DoesNotExist:
        return None


def install(payload: dict[str, Any]) -> Outcome:
    """Create or update the tenant from a verified install payload; the secret is replaced."""
    now = timezone.now()
    values = {attr: payload.get(name) or "" for name, attr in PAYLOAD_FIELDS.items()}
    with transaction.atomic():
        tenant = _locked(payload["clientKey"])
        created = tenant is None
        if tenant is None:
            tenant = Tenant(client_key=payload["clientKey"], installed_at=now)
        elif not tenant.installed:
            tenant.installed_at = now
        for attr, value in values.items():
            setattr(tenant, attr, value)
        tenant.shared_secret = payload["sharedSecret"]
        tenant.secret_rotated_at = now
        tenant.installed = True
        tenant.enabled = True
        tenant.uninstalled_at = None
        if created:
            # A concurrent first install of the same clientKey makes this a unique-constraint
            # conflict; the caller retries once and then takes the update path above.
            tenant.save(force_insert=True)
        else:
            tenant.save()
        invalidate(tenant.client_key)
        # A new secret, maybe a host that lost our properties: queue every mirrored property
        # again, in this transaction. Deliveries wait for `enabled` (or the install delay).
        mirror.remirror_tenant(tenant, delay=float(connect_settings.MIRROR_INSTALL_DELAY))
    return Outcome(tenant, signals.tenant_installed, {"created": created})


def uninstall(client_key: str) -> Outcome:
    with transaction.atomic():
        tenant = _locked(client_key)
        if tenant is None or not tenant.installed:
            return Outcome(tenant)
        tenant.installed = False
        tenant.enabled = False
        tenant.uninstalled_at = timezone.now()
        tenant.save(update_fields=["installed", "enabled", "uninstalled_at", "updated_at"])
        invalidate(client_key)
    return Outcome(tenant, signals.tenant_uninstalled)


def set_enabled(client_key: str, enabled: bool) -> Outcome:
    """Enable or disable; disabling an uninstalled tenant is a no-op (the race is benign)."""
    signal = signals.tenant_enabled if enabled else signals.tenant_disabled
    with transaction.atomic():
        tenant = _locked(client_key)
        if tenant is None or not tenant.installed or tenant.enabled == enabled:
            return Outcome(tenant)
        tenant.enabled = enabled
        tenant.enabled_changed_at = timezone.now()
        tenant.save(update_fields=["enabled", "enabled_changed_at", "updated_at"])
        invalidate(client_key)
    return Outcome(tenant, signal)
