"""Encryption of shared secrets, key rotation, purge, and secrets kept out of sight."""

from __future__ import annotations

import logging
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from connect_settings import store
from connect_settings.exceptions import SecretDecryptionError
from connect_settings.models import AddonSetting, Tenant
from connect_settings.testing import DEFAULT_SECRET, install_payload, make_tenant

pytestmark = pytest.mark.django_db

OLD_KEY = "old-encryption-key-0123456789-abcdefghijkl"
NEW_KEY = "new-encryption-key-0123456789-abcdefghijkl"


def _with_keys(settings, keys):
    settings.CONNECT_SETTINGS = {**settings.CONNECT_SETTINGS, "SECRET_KEYS": keys}


def test_secret_is_encrypted_and_readable(settings):
    _with_keys(settings, [OLD_KEY])
    tenant = make_tenant()
    raw = Tenant.objects.filter(pk=tenant.pk).values_list("shared_secret_encrypted", flat=True)[0]
    assert DEFAULT_SECRET not in raw
    assert Tenant.objects.get().shared_secret == DEFAULT_SECRET


def test_rotation_reencrypts_every_secret(settings):
    _with_keys(settings, [OLD_KEY])
    for i in range(3):
        make_tenant(f"t{i}", f"secret-{i}-0123456789-0123456789-0123456789")
    before = dict(Tenant.objects.values_list("client_key", "shared_secret_encrypted"))
    _with_keys(settings, [NEW_KEY, OLD_KEY])
    out = StringIO()
    call_command("connect_rotate_keys", stdout=out)
    assert "3 of 3" in out.getvalue()
    after = dict(Tenant.objects.values_list("client_key", "shared_secret_encrypted"))
    assert all(before[k] != after[k] for k in before)
    _with_keys(settings, [NEW_KEY])  # the old key is gone: secrets still decrypt
    assert [t.shared_secret for t in Tenant.objects.order_by("client_key")] == [
        f"secret-{i}-0123456789-0123456789-0123456789" for i in range(3)
    ]
    assert "secret-" not in out.getvalue()


def test_rotation_with_missing_key_fails_cleanly(settings):
    _with_keys(settings, [OLD_KEY])
    make_tenant()
    before = list(Tenant.objects.values_list("shared_secret_encrypted", flat=True))
    _with_keys(settings, [NEW_KEY])
    with pytest.raises(CommandError, match="cannot be decrypted") as info:
        call_command("connect_rotate_keys", stdout=StringIO())
    assert DEFAULT_SECRET not in str(info.value)
    assert list(Tenant.objects.values_list("shared_secret_encrypted", flat=True)) == before
    with pytest.raises(SecretDecryptionError):
        Tenant.objects.get().shared_secret  # noqa: B018


def test_purge_removes_only_old_uninstalled_tenants():
    keep = make_tenant("installed")
    recent = make_tenant(
        "recent", installed=False, uninstalled_at=timezone.now() - timedelta(days=2)
    )
    old = make_tenant("old", installed=False, uninstalled_at=timezone.now() - timedelta(days=40))
    store.set("k", 1, "old")
    out = StringIO()
    call_command("connect_purge", "--dry-run", stdout=out)
    assert "1 tenant(s) would be purged" in out.getvalue()
    assert Tenant.objects.count() == 3
    call_command("connect_purge", stdout=StringIO())
    assert set(Tenant.objects.values_list("pk", flat=True)) == {keep.pk, recent.pk}
    assert not AddonSetting.objects.filter(tenant_id=old.pk).exists()
    call_command("connect_purge", "--days", "1", stdout=StringIO())
    assert list(Tenant.objects.values_list("pk", flat=True)) == [keep.pk]


def test_secret_never_logged_on_install(client, connect_installer, caplog):
    caplog.set_level(logging.DEBUG)
    connect_installer.post(client, "/installed", install_payload())
    connect_installer.key_server.mode = "down"
    connect_installer.post(client, "/installed", install_payload(sharedSecret="x" * 40))
    assert Tenant.objects.count() == 1
    assert DEFAULT_SECRET not in caplog.text


def test_admin_pages_never_show_the_secret(admin_client):
    tenant = make_tenant()
    store.set("colour", "blue", tenant.client_key)
    pages = [
        "/admin/connect_settings/tenant/",
        "/admin/connect_settings/tenant/?q=test-client",
        "/admin/connect_settings/tenant/?product_type__exact=jira&installed__exact=1",
        f"/admin/connect_settings/tenant/{tenant.pk}/change/",
        "/admin/connect_settings/addonsetting/",
        f"/admin/connect_settings/addonsetting/{AddonSetting.objects.get().pk}/change/",
    ]
    for url in pages:
        response = admin_client.get(url)
        assert response.status_code == 200, url
        body = response.content.decode()
        assert DEFAULT_SECRET not in body
        assert tenant.shared_secret_encrypted not in body
    assert "test-client-key" in admin_client.get(pages[1]).content.decode()
    assert admin_client.get("/admin/connect_settings/tenant/add/").status_code == 403


def test_admin_edits_settings_with_json_validation(
    admin_client, django_capture_on_commit_callbacks
):
    tenant = make_tenant()
    store.set("colour", "blue", tenant.client_key)
    setting = AddonSetting.objects.get()
    url = f"/admin/connect_settings/addonsetting/{setting.pk}/change/"
    response = admin_client.post(url, {"tenant": tenant.pk, "key": "colour", "value": "{not json"})
    assert response.status_code == 200
    assert "Enter a valid JSON" in response.content.decode()
    assert store.get("colour", tenant.client_key) == "blue"
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            url, {"tenant": tenant.pk, "key": "colour", "value": '{"shade": "dark"}'}
        )
    assert response.status_code == 302
    assert store.get("colour", tenant.client_key) == {"shade": "dark"}
