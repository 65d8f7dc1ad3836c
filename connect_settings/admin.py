"""Django admin for staff: tenants (read-only, secret never shown) and their settings."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from . import (  # noqa: F401  (these modules register their admins)
    configure_admin,
    mirror_admin,
    store,
)
from .models import AddonSetting, Tenant


class AddonSettingInline(admin.TabularInline):
    model = AddonSetting
    extra = 0
    fields = ("key", "value", "updated_at")
    readonly_fields = ("updated_at",)
    show_change_link = True


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    list_display = (
        "client_key",
        "base_url",
        "product_type",
        "state_label",
        "installed_at",
        "updated_at",
    )
    list_filter = ("product_type", "installed", "enabled")
    search_fields = ("client_key", "base_url", "display_url", "installation_id")
    date_hierarchy = "installed_at"
    # shared_secret_encrypted is not editable and never listed: staff never see a secret.
    exclude = ("shared_secret_encrypted",)
    inlines = [AddonSettingInline]
    actions = [mirror_admin.mirror_tenants_now]
    fieldsets = (
        (None, {"fields": ("client_key", "base_url", "display_url", "product_type", "addon_key")}),
        (
            "State",
            {
                "fields": (
                    "installed",
                    "enabled",
                    "installed_at",
                    "uninstalled_at",
                    "enabled_changed_at",
                    "secret_rotated_at",
                )
            },
        ),
        (
            "Install payload",
            {
                "classes": ("collapse",),
                "fields": (
                    "description",
                    "server_version",
                    "plugins_version",
                    "display_url_servicedesk_help_center",
                    "service_entitlement_number",
                    "entitlement_id",
                    "entitlement_number",
                    "oauth_client_id",
                    "installation_id",
                ),
            },
        ),
        ("Record", {"fields": ("created_at", "updated_at")}),
    )

    @admin.display(description="state", ordering="installed")
    def state_label(self, obj: Tenant) -> str:
        return obj.state

    def get_readonly_fields(self, request: HttpRequest, obj: Tenant | None = None) -> list[str]:
        # Tenants come from signed installs; editing them by hand would desync the host.
        return [f.name for f in Tenant._meta.concrete_fields if f.name != "shared_secret_encrypted"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(AddonSetting)
class AddonSettingAdmin(admin.ModelAdmin):
    list_display = ("key", "tenant", "updated_at")
    list_filter = ("tenant__product_type", "key")
    search_fields = ("key", "tenant__client_key", "tenant__base_url")
    list_select_related = ("tenant",)
    autocomplete_fields = ("tenant",)
    readonly_fields = ("created_at", "updated_at")

    def save_model(self, request: HttpRequest, obj: AddonSetting, form: Any, change: bool) -> None:
        # Through the store, so setting_changed fires as for every other write.
        if change and "key" in form.changed_data:
            store.delete(form.initial["key"], obj.tenant.client_key)
        store.set(obj.key, obj.value, obj.tenant.client_key)
        saved = AddonSetting.objects.get(tenant=obj.tenant, key=obj.key)
        obj.pk, obj.created_at, obj.updated_at = saved.pk, saved.created_at, saved.updated_at

    def delete_model(self, request: HttpRequest, obj: AddonSetting) -> None:
        store.delete(obj.key, obj.tenant.client_key)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[AddonSetting]) -> None:
        for obj in queryset.select_related("tenant"):
            store.delete(obj.key, obj.tenant.client_key)
