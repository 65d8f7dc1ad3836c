"""The Django admin edits a tenant's configuration through the configure form."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client

from connect_settings import store
from connect_settings.configuration import save_configuration
from connect_settings.models import ConfigurationChange, Tenant

pytestmark = pytest.mark.django_db

TOKEN_VALUE = "adm-SECRET-1a2b3c4d5e"


def _url(tenant: Tenant) -> str:
    return f"/admin/connect_settings/configuration/{tenant.pk}/change/"


def _form(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "version": "0",
        "team_name": "Support",
        "default_priority": "medium",
        "notify": "on",
        "results_per_page": "25",
        "channels": ["email"],
        "project_keys": "",
        "api_token": "",
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def test_admin_shows_the_form_with_secrets_redacted(admin_client, connect_tenant):
    save_configuration(connect_tenant, {"team_name": "Ops", "api_token": TOKEN_VALUE})
    response = admin_client.get(_url(connect_tenant))
    assert response.status_code == 200
    html = response.content.decode()
    assert TOKEN_VALUE not in html
    assert 'value="Ops"' in html
    assert 'name="version" value="1"' in html
    assert "A value is set." in html and 'name="api_token__clear"' in html
    # The tenant's own page links to the editor and to its history.
    tenant_page = admin_client.get(f"/admin/connect_settings/tenant/{connect_tenant.pk}/change/")
    assert _url(connect_tenant) in tenant_page.content.decode()
    assert f"configurationchange/?tenant__id__exact={connect_tenant.pk}" in (
        tenant_page.content.decode()
    )


def test_admin_save_uses_the_same_validation_and_writes_history(admin_client, connect_tenant):
    response = admin_client.post(
        _url(connect_tenant),
        _form(team_name="Platform", project_keys="OPS\nSUP\n", notify=None, api_token=TOKEN_VALUE),
    )
    assert response.status_code == 302
    stored = store.get("appSettings", "test-client-key")
    assert stored["team_name"] == "Platform" and stored["project_keys"] == ["OPS", "SUP"]
    assert stored["notify"] is False and stored["api_token"] == TOKEN_VALUE
    change = ConfigurationChange.objects.get()
    assert (change.source, change.staff_user, change.account_id) == ("admin", "admin", "")
    assert change.changes["api_token"]["to"] == {"secret": True, "set": True}
    # An empty secret box keeps the secret; "clear" removes it.
    admin_client.post(_url(connect_tenant), _form(version="1", team_name="Platform 2"))
    assert store.get("appSettings", "test-client-key")["api_token"] == TOKEN_VALUE
    admin_client.post(_url(connect_tenant), _form(version="2", api_token__clear="on"))
    assert store.get("appSettings", "test-client-key")["api_token"] == ""
    assert ConfigurationChange.objects.count() == 3


def test_admin_invalid_values_show_errors_and_store_nothing(admin_client, connect_tenant):
    response = admin_client.post(
        _url(connect_tenant),
        _form(results_per_page="0", project_keys="bad key", api_token="typed " + TOKEN_VALUE),
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert "Ensure this value is greater than or equal to 1." in html
    assert "&#x27;bad key&#x27;: Use a project key such as SUP or OPS." in html
    assert TOKEN_VALUE not in html  # the typed secret is not echoed back either
    assert store.get("appSettings", "test-client-key") is None
    assert not ConfigurationChange.objects.exists()


def test_admin_stale_version_is_refused(admin_client, connect_tenant):
    save_configuration(connect_tenant, {"team_name": "Theirs"})
    response = admin_client.post(_url(connect_tenant), _form(team_name="Mine"), follow=True)
    html = response.content.decode()
    assert "Someone else saved this configuration (now version 1)" in html
    assert store.get("appSettings", "test-client-key")["team_name"] == "Theirs"
    assert 'name="version" value="1"' in html and 'value="Theirs"' in html


def test_admin_needs_permissions(client: Client, connect_tenant):
    assert client.get(_url(connect_tenant)).status_code == 302  # to the login page
    staff = User.objects.create_user("viewer", password="pw-0123456789", is_staff=True)
    client.force_login(staff)
    assert client.get(_url(connect_tenant)).status_code == 403
    staff.user_permissions.add(Permission.objects.get(codename="view_configuration"))
    staff = User.objects.get(pk=staff.pk)
    client.force_login(staff)
    response = client.get(_url(connect_tenant))
    assert response.status_code == 200 and 'name="_save"' not in response.content.decode()
    assert client.post(_url(connect_tenant), _form(team_name="Nope")).status_code == 403
    assert store.get("appSettings", "test-client-key") is None


def test_history_admin_lists_filters_and_never_shows_secrets(admin_client, connect_tenant):
    from connect_settings.testing import make_tenant

    other = make_tenant("other-key", base_url="https://other.atlassian.net")
    save_configuration(
        connect_tenant, {"team_name": "A", "api_token": TOKEN_VALUE}, account_id="u1"
    )
    save_configuration(connect_tenant, {"results_per_page": 40}, version=1, account_id="u2")
    save_configuration(other, {"results_per_page": 50}, staff_user="admin", source="admin")
    base = "/admin/connect_settings/configurationchange/"
    html = admin_client.get(base).content.decode()
    assert html.count('class="field-version"') == 3 and TOKEN_VALUE not in html

    def rows(query: str) -> int:
        response = admin_client.get(base + query)
        assert response.status_code == 200
        return response.content.decode().count('class="field-version"')

    assert rows("?field=api_token") == 1
    assert rows("?field=results_per_page") == 2
    assert rows("?source__exact=admin") == 1
    assert rows(f"?tenant__id__exact={connect_tenant.pk}") == 2
    assert rows("?q=u2") == 1
    change = ConfigurationChange.objects.get(tenant=connect_tenant, version=1)
    detail = admin_client.get(f"{base}{change.pk}/change/").content.decode()
    assert "set (secret)" in detail and TOKEN_VALUE not in detail
    assert "Team name" in detail
    # History is a record: nobody edits or deletes it through the admin.
    assert admin_client.post(f"{base}{change.pk}/delete/", {"post": "yes"}).status_code == 403
    assert ConfigurationChange.objects.filter(pk=change.pk).exists()


def test_configurations_changelist(admin_client, connect_tenant):
    save_configuration(connect_tenant, {"team_name": "A"}, account_id="u1")
    html = admin_client.get("/admin/connect_settings/configuration/").content.decode()
    assert "u1" in html
    assert admin_client.get("/admin/connect_settings/configuration/add/").status_code == 403
