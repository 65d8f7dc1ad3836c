"""Django admin for mirroring: the status of every mirrored property, and "mirror now"."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from . import mirror
from .models import MirrorEntry, Tenant


def mirror_tenants_now(
    modeladmin: admin.ModelAdmin, request: HttpRequest, tenants: QuerySet[Tenant]
) -> None:
    """Re-send every mirrored property of the selected tenants, now, in this request."""
    results: dict[str, int] = {}
    for tenant in tenants.filter(installed=True):
        for spec in mirror.specs():
            status = mirror.repair(tenant, spec)
            results[status] = results.get(status, 0) + 1
    if not results:
        modeladmin.message_user(request, "Nothing to mirror.", messages.WARNING)
        return
    summary = ", ".join(f"{count} {status}" for status, count in sorted(results.items()))
    level = messages.SUCCESS if set(results) <= {"synced", "skipped"} else messages.WARNING
    modeladmin.message_user(request, f"Mirrored: {summary}.", level)


mirror_tenants_now.short_description = "Mirror settings to the host now"  # type: ignore[attr-defined]


@admin.register(MirrorEntry)
class MirrorEntryAdmin(admin.ModelAdmin):
    list_display = (
        "property_key",
        "tenant",
        "status",
        "version",
        "delivered_version",
        "attempts",
        "short_error",
        "updated_at",
    )
    list_filter = ("status", "property_key")
    search_fields = ("property_key", "tenant__client_key", "tenant__base_url")
    list_select_related = ("tenant",)
    actions = ["mirror_now"]
    readonly_fields = [f.name for f in MirrorEntry._meta.fields if f.editable]

    @admin.display(description="last error")
    def short_error(self, obj: MirrorEntry) -> str:
        return (obj.last_error[:80] + "…") if len(obj.last_error) > 80 else obj.last_error

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # entries come from saves

    @admin.action(description="Mirror the selected properties now")
    def mirror_now(self, request: HttpRequest, queryset: QuerySet[MirrorEntry]) -> None:
        specs = {s.property: s for s in mirror.specs()}
        results: dict[str, int] = {}
        for entry in queryset.select_related("tenant"):
            spec = specs.get(entry.property_key)
            if spec is None or not entry.tenant.installed:
                results["skipped"] = results.get("skipped", 0) + 1
                continue
            status = mirror.repair(entry.tenant, spec)
            results[status] = results.get(status, 0) + 1
        summary = ", ".join(f"{count} {status}" for status, count in sorted(results.items()))
        self.message_user(request, f"Mirrored: {summary}.")
