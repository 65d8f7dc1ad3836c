"""Django admin for configurations: edit a tenant's settings through the configure form (same
validation, secrets redacted, same history) and browse the full change history with filters.

``admin/connect_settings/configuration/<tenant id>/change/`` is the editor for any tenant (the
``Configuration`` row's primary key is the tenant's); the tenant's own admin page links to it.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from .configuration import (
    ConfigurationConflict,
    ConfigurationInvalid,
    current_state,
    save_configuration,
    stored_values,
)
from .forms import (
    SecretInput,
    build_form,
    configure_form_class,
    describe_change,
    field_rows,
    secret_field_names,
)
from .models import Configuration, ConfigurationChange, Tenant


def html_submission(form: forms.BaseForm, data: Any, files: Any = None) -> dict[str, Any]:
    """An HTML form post read through the form's widgets, as JSON-style ``values``.

    A secret's empty box is left out (kept); its "clear" box sends ``None``.
    """
    secrets = secret_field_names(type(form))
    values: dict[str, Any] = {}
    for name, f in form.fields.items():
        html_name = form.add_prefix(name)
        if name in secrets and isinstance(f.widget, SecretInput):
            if data.get(f"{html_name}__clear") in ("on", "true", "1"):
                values[name] = None
            elif data.get(html_name):
                values[name] = data.get(html_name)
            continue
        values[name] = f.widget.value_from_datadict(data, files, html_name)
    return values


@admin.register(Configuration)
class ConfigurationAdmin(admin.ModelAdmin):
    list_display = ("tenant", "version", "updated_at", "updated_by")
    list_select_related = ("tenant",)
    search_fields = ("tenant__client_key", "tenant__base_url", "updated_by")
    list_filter = ("tenant__product_type",)
    date_hierarchy = "updated_at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # a configuration is created by its first save

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # deleting would reset the version under open pages

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        """The configure form for the tenant whose primary key is ``object_id``."""
        tenant = get_object_or_404(Tenant, pk=unquote(object_id))
        can_change = self.has_change_permission(request)
        if not (can_change or self.has_view_permission(request)):
            raise PermissionDenied
        if request.method == "POST" and not can_change:
            raise PermissionDenied
        form_class = configure_form_class()
        stored = stored_values(tenant)
        form = build_form(form_class, stored)
        version = current_state(tenant, stored)["version"]
        if request.method == "POST":
            try:
                submitted_version = int(request.POST.get("version", ""))
            except ValueError:
                submitted_version = -1  # never current: answered as a conflict
            bound = build_form(form_class, stored_values(tenant), data=request.POST)
            try:
                result = save_configuration(
                    tenant,
                    html_submission(bound, request.POST, request.FILES),
                    version=submitted_version,
                    staff_user=request.user.get_username(),
                    source=ConfigurationChange.Source.ADMIN,
                )
            except ConfigurationInvalid as err:
                form = err.form or bound
                for name, errors in err.errors.items():
                    if name not in form.errors and name in form.fields:
                        for message in errors:
                            form.add_error(name, message)
                self.message_user(request, "Please correct the errors below.", messages.ERROR)
            except ConfigurationConflict as err:
                version = err.current["version"]
                self.message_user(
                    request,
                    f"Someone else saved this configuration (now version {version}) after you "
                    "opened it; nothing was stored. Review the current values and save again.",
                    messages.ERROR,
                )
            else:
                if result.changed:
                    self.message_user(
                        request,
                        f"Saved version {result.version} ({', '.join(result.changed)}).",
                        messages.SUCCESS,
                    )
                else:
                    self.message_user(request, "Nothing changed.", messages.INFO)
                return HttpResponseRedirect(request.path)
        changes = ConfigurationChange.objects.filter(tenant=tenant)[:50]
        context = {
            **self.admin_site.each_context(request),
            "title": f"Configuration of {tenant}",
            "subtitle": None,
            "opts": self.opts,
            "tenant_opts": Tenant._meta,
            "tenant": tenant,
            "form": form,
            "rows": field_rows(form),
            "version": version,
            "can_change": can_change,
            "history": [
                {"change": c, "fields": describe_change(form_class, c.changes)} for c in changes
            ],
            "history_url": reverse("admin:connect_settings_configurationchange_changelist")
            + f"?tenant__id__exact={tenant.pk}",
            **(extra_context or {}),
        }
        return TemplateResponse(request, "admin/connect_settings/configuration/edit.html", context)


class ChangedFieldFilter(admin.SimpleListFilter):
    """Changes that touched one field of the configure form."""

    title = "changed field"
    parameter_name = "field"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        fields = configure_form_class().base_fields
        return [(name, str(f.label or name)) for name, f in fields.items()]

    def queryset(
        self, request: HttpRequest, queryset: QuerySet[ConfigurationChange]
    ) -> QuerySet[ConfigurationChange]:
        value = self.value()
        return queryset.filter(changes__has_key=value) if value else queryset


@admin.register(ConfigurationChange)
class ConfigurationChangeAdmin(admin.ModelAdmin):
    """The full history, read-only: who changed which fields of which tenant, and when."""

    list_display = ("changed_at", "tenant", "version", "who", "source", "fields_changed")
    list_filter = (
        "source",
        ChangedFieldFilter,
        "changed_at",
        ("tenant", admin.RelatedOnlyFieldListFilter),
        "tenant__product_type",
    )
    list_select_related = ("tenant",)
    search_fields = ("tenant__client_key", "tenant__base_url", "account_id", "staff_user")
    date_hierarchy = "changed_at"
    fields = ("tenant", "version", "changed_at", "who", "source", "changes_table")
    readonly_fields = fields

    @admin.display(description="who")
    def who(self, obj: ConfigurationChange) -> str:
        return obj.actor

    @admin.display(description="fields")
    def fields_changed(self, obj: ConfigurationChange) -> str:
        return ", ".join(r["label"] for r in describe_change(configure_form_class(), obj.changes))

    @admin.display(description="changes")
    def changes_table(self, obj: ConfigurationChange) -> str:
        rows = describe_change(configure_form_class(), obj.changes)
        body = format_html_join(
            "",
            "<tr><th>{}</th><td>{}</td><td>{}</td></tr>",
            (
                (r["label"], r["summary"] + " (secret)", "")
                if r["secret"]
                else (r["label"], r["from"], r["to"])
                for r in rows
            ),
        )
        return format_html(
            "<table><thead><tr><th>Field</th><th>From</th><th>To</th></tr></thead>"
            "<tbody>{}</tbody></table>",
            body,
        )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # history is a record: read-only

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
