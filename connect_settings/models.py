"""Tenants (one per installed site) and their settings."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from . import crypto


class ProductType(models.TextChoices):
    JIRA = "jira", "Jira"
    CONFLUENCE = "confluence", "Confluence"


class Tenant(models.Model):
    """One installation of the app into one Atlassian site, keyed by ``clientKey``.

    The shared secret is stored encrypted (``shared_secret_encrypted``); read and write it
    through :attr:`shared_secret`. It never appears in ``__str__`` or ``repr``.
    """

    client_key = models.CharField(_("client key"), max_length=255, unique=True)
    addon_key = models.CharField(_("app key"), max_length=255)
    shared_secret_encrypted = models.TextField(editable=False)
    base_url = models.URLField(_("base URL"), max_length=512)
    display_url = models.URLField(_("display URL"), max_length=512, blank=True)
    display_url_servicedesk_help_center = models.URLField(max_length=512, blank=True)
    product_type = models.CharField(
        _("product"), max_length=32, choices=ProductType.choices, blank=True
    )
    description = models.TextField(blank=True)
    server_version = models.CharField(max_length=64, blank=True)
    plugins_version = models.CharField(max_length=64, blank=True)
    service_entitlement_number = models.CharField(max_length=255, blank=True)
    entitlement_id = models.CharField(max_length=255, blank=True)
    entitlement_number = models.CharField(max_length=255, blank=True)
    oauth_client_id = models.CharField(max_length=255, blank=True)
    installation_id = models.CharField(max_length=255, blank=True, db_index=True)

    installed = models.BooleanField(_("installed"), default=True)
    enabled = models.BooleanField(_("enabled"), default=True)
    installed_at = models.DateTimeField(default=timezone.now)
    uninstalled_at = models.DateTimeField(null=True, blank=True)
    enabled_changed_at = models.DateTimeField(null=True, blank=True)
    secret_rotated_at = models.DateTimeField(default=timezone.now)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("tenant")
        verbose_name_plural = _("tenants")
        ordering = ["client_key"]
        indexes = [models.Index(fields=["installed", "uninstalled_at"])]

    def __str__(self) -> str:
        return f"{self.base_url or '?'} ({self.client_key})"

    def __repr__(self) -> str:
        return f"<Tenant {self.client_key!r} installed={self.installed} enabled={self.enabled}>"

    @property
    def shared_secret(self) -> str:
        return crypto.decrypt(self.shared_secret_encrypted)

    @shared_secret.setter
    def shared_secret(self, value: str) -> None:
        self.shared_secret_encrypted = crypto.encrypt(value)

    @property
    def state(self) -> str:
        if not self.installed:
            return "uninstalled"
        return "enabled" if self.enabled else "disabled"

    @property
    def base_path(self) -> str:
        """The product's context path (``/wiki`` for Confluence), for qsh of app->host calls."""
        return urlsplit(self.base_url).path.rstrip("/")


class AddonSetting(models.Model):
    """One per-tenant key/value pair; the value is any JSON document."""

    # No index of its own: the unique (tenant, key) index serves every lookup by tenant.
    tenant = models.ForeignKey(
        Tenant, on_delete=models.CASCADE, related_name="settings", db_index=False
    )
    key = models.CharField(_("key"), max_length=255)
    value = models.JSONField(_("value"), null=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("app setting")
        verbose_name_plural = _("app settings")
        # tenant_id, not tenant: ordering by the relation would join the tenant table (and
        # lock its row under select_for_update) only to sort.
        ordering = ["tenant_id", "key"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "key"], name="connect_setting_unique_key")
        ]

    def __str__(self) -> str:
        return f"{self.key} (tenant {self.tenant_id})"

    def as_dict(self) -> dict[str, Any]:
        return {"key": self.key, "value": self.value}


class Configuration(models.Model):
    """The version of a tenant's configure-form settings (the values live in ``AddonSetting``
    under ``CONFIGURE_SETTING_KEY``). Saves lock this row, so a version check and the write
    that follows it cannot interleave with another save of the same tenant."""

    tenant = models.OneToOneField(
        Tenant, on_delete=models.CASCADE, primary_key=True, related_name="configuration"
    )
    version = models.PositiveIntegerField(_("version"), default=0)
    updated_at = models.DateTimeField(_("updated at"), null=True, blank=True)
    #: Who saved last: an Atlassian accountId, or ``staff:<username>`` for the Django admin.
    updated_by = models.CharField(_("updated by"), max_length=255, blank=True)
    #: Whether a process may keep a copy of the configure page's state read since the last
    #: save: set by the reads it keeps, cleared by saves (PostgreSQL), which publish an
    #: invalidation only when it was set. See ``configure_page.read_state``.
    copies_held = models.BooleanField(default=False, db_default=False, editable=False)

    class Meta:
        verbose_name = _("configuration")
        verbose_name_plural = _("configurations")
        ordering = ["tenant_id"]

    def __str__(self) -> str:
        return f"configuration v{self.version} of tenant {self.tenant_id}"


class ConfigurationChange(models.Model):
    """One save that changed a tenant's configuration: who, when, and each changed field's
    old and new value (secrets as ``{"secret": true, "set": <bool>}``, never in clear)."""

    class Source(models.TextChoices):
        PAGE = "page", _("configure page or API")
        ADMIN = "admin", _("Django admin")

    # No index of its own: the (tenant, version) and (tenant, changed_at) indexes serve every
    # lookup by tenant, and each save inserts a row into all of this table's indexes.
    tenant = models.ForeignKey(
        Tenant, on_delete=models.CASCADE, related_name="configuration_changes", db_index=False
    )
    version = models.PositiveIntegerField(_("version"))
    changed_at = models.DateTimeField(_("changed at"), default=timezone.now)
    #: The Atlassian accountId from the token (empty when the token named no user).
    account_id = models.CharField(_("Atlassian account"), max_length=255, blank=True)
    #: The Django username for admin edits.
    staff_user = models.CharField(_("staff user"), max_length=150, blank=True)
    source = models.CharField(_("source"), max_length=16, choices=Source.choices)
    #: ``{field: {"from": old, "to": new}}``.
    changes = models.JSONField(_("changes"), default=dict)

    class Meta:
        verbose_name = _("configuration change")
        verbose_name_plural = _("configuration changes")
        ordering = ["-changed_at", "-version"]
        constraints = [
            # A second write of the same version would be a lost update: refuse it outright.
            models.UniqueConstraint(
                fields=["tenant", "version"], name="connect_config_change_unique_version"
            )
        ]
        indexes = [models.Index(fields=["tenant", "-changed_at"])]

    def __str__(self) -> str:
        return f"v{self.version} of tenant {self.tenant_id} ({', '.join(self.changes)})"

    @property
    def actor(self) -> str:
        if self.staff_user:
            return f"{self.staff_user} (staff)"
        return self.account_id or "unknown user"


class MirrorEntry(models.Model):
    """The outbox row of one mirrored app property of one tenant.

    Saves raise ``version`` in the transaction that changes the setting; a delivery records
    the version the host has (``delivered_version``). ``leased_until`` marks a delivery in
    progress, so only one sends at a time and a crashed worker's claim runs out by itself.
    """

    class Status(models.TextChoices):
        PENDING = "pending", _("pending")
        SYNCED = "synced", _("synced")
        FAILED = "failed", _("failed")

    # No index of its own: the unique (tenant, property_key) index serves lookups by tenant.
    tenant = models.ForeignKey(
        Tenant, on_delete=models.CASCADE, related_name="mirror_entries", db_index=False
    )
    property_key = models.CharField(_("property key"), max_length=127)
    #: The value the host should hold; ``deleted`` means the property should not exist.
    value = models.JSONField(_("value"), null=True, blank=True)
    deleted = models.BooleanField(_("deleted"), default=False)
    version = models.PositiveBigIntegerField(_("version"), default=0)
    delivered_version = models.PositiveBigIntegerField(_("delivered version"), default=0)
    status = models.CharField(
        _("status"), max_length=16, choices=Status.choices, default=Status.PENDING
    )
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    last_error = models.TextField(_("last error"), blank=True)
    next_attempt_at = models.DateTimeField(_("next attempt"), null=True, blank=True)
    leased_until = models.DateTimeField(null=True, blank=True, editable=False)
    delivered_at = models.DateTimeField(_("delivered at"), null=True, blank=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("mirrored property")
        verbose_name_plural = _("mirrored properties")
        ordering = ["tenant_id", "property_key"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "property_key"], name="connect_mirror_unique_property"
            )
        ]
        indexes = [models.Index(fields=["status", "next_attempt_at"])]

    def __str__(self) -> str:
        return f"{self.property_key} of tenant {self.tenant_id} ({self.status})"


class ForgeInstallation(models.Model):
    """A Forge installation (``ari:cloud:ecosystem::installation/<uuid>``) of the app, mapped
    to the Connect tenant of the same site.

    One tenant may see several installation ids over time (reinstall, site import). The app
    system token (``x-forge-oauth-system``) is kept encrypted until it expires, so deliveries
    can reach the host after the Connect version is gone.
    """

    class Source(models.TextChoices):
        CONNECT_PAYLOAD = "connect-payload", _("Connect install payload")
        FORGE_EVENT = "forge-event", _("Forge installed event")
        RESERVED_PROPERTY = "reserved-property", _("reserved clientKey app property")
        SITE_URL = "site-url", _("site URL")

    installation_id = models.CharField(_("installation id"), max_length=255, unique=True)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="forge_installations")
    cloud_id = models.CharField(_("cloud id"), max_length=64, blank=True, db_index=True)
    site_url = models.URLField(_("site URL"), max_length=512, blank=True)
    api_base_url = models.URLField(_("API base URL"), max_length=512, blank=True)
    environment = models.CharField(_("environment"), max_length=32, blank=True)
    source = models.CharField(_("mapped from"), max_length=32, choices=Source.choices)
    system_token_encrypted = models.TextField(blank=True, editable=False)
    system_token_expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_seen_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = _("Forge installation")
        verbose_name_plural = _("Forge installations")
        ordering = ["-last_seen_at"]

    def __str__(self) -> str:
        return f"{self.installation_id} -> tenant {self.tenant_id}"

    @property
    def system_token(self) -> str | None:
        """The cached system token while it is valid (a minute of margin), else None."""
        if not self.system_token_encrypted or self.system_token_expires_at is None:
            return None
        if self.system_token_expires_at <= timezone.now() + timedelta(seconds=60):
            return None
        return crypto.decrypt(self.system_token_encrypted)
