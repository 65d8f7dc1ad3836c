"""The move to Forge, end to end against the host emulator and the app on a live server."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from connect_settings import signals, store
from connect_settings.models import ForgeInstallation, MirrorEntry, Tenant
from connect_settings.signals import property_mirrored


def _wait_for(signal: Any, predicate: Any) -> threading.Event:
    done = threading.Event()

    def receiver(**kwargs: Any) -> None:
        if predicate(kwargs):
            done.set()

    signal.connect(receiver, weak=False)
    done.receiver = receiver  # type: ignore[attr-defined]
    return done


@pytest.mark.parametrize("product", ["jira", "confluence"])
def test_connect_to_forge_move_keeps_tenant_and_settings(connect_live_install, settings, product):
    emulator, tenant = connect_live_install(product)
    settings.CONNECT_SETTINGS = {
        **settings.CONNECT_SETTINGS,
        "FORGE_APP_ID": emulator.forge_app_id,
        "FORGE_JWKS_URLS": [emulator.forge_jwks_url],
        "FORGE_API_HOSTS": ["127.0.0.1"],
        "MIRROR": [{"property": "feature-flags", "setting": "flags"}],
    }
    app_url = settings.CONNECT_SETTINGS["BASE_URL"]
    emulator.forge_events_url = f"{app_url}/forge/events"
    # On Connect: configure and mirror.
    store.set("flags", {"beta": True}, tenant.client_key)
    assert emulator.properties() == {"feature-flags": {"beta": True}}

    # The site moves to the Forge version: Connect is uninstalled without a lifecycle event.
    emulator.move_to_forge()
    assert Tenant.objects.get(pk=tenant.pk).installed  # we were never told
    response = emulator.invoke_remote(f"{app_url}/forge/settings", principal="557058:user")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["settings"] == {"flags": {"beta": True}}
    assert body["installationId"] == emulator.forge_installation_id
    mapping = ForgeInstallation.objects.get()
    assert (mapping.tenant_id, mapping.source) == (tenant.pk, "connect-payload")
    assert mapping.system_token  # kept (encrypted) for deliveries outside requests

    # A change after the move is mirrored through the system token and read back by Forge.
    store.set("flags", {"beta": False, "new": 1}, tenant.client_key)
    assert MirrorEntry.objects.get(tenant=tenant).status == "synced"
    assert emulator.properties(tenant.addon_key) == {"feature-flags": {"beta": False, "new": 1}}
    forge_read = emulator.invoke_remote(f"{app_url}/forge/settings").json()
    assert forge_read["settings"] == {"flags": {"beta": False, "new": 1}}

    # A reinstall on Forge: a new installation id, learnt from the installed event (the
    # reserved clientKey property, read with the system token), still the same tenant.
    old_iid = emulator.forge_installation_id
    handled = _wait_for(signals.forge_event, lambda kw: kw["tenant"].pk == tenant.pk)
    synced = _wait_for(property_mirrored, lambda kw: kw["status"] == "synced")
    try:
        deliveries = emulator.reinstall_forge()
        assert handled.wait(15) and synced.wait(15)
    finally:
        signals.forge_event.disconnect(handled.receiver)  # type: ignore[attr-defined]
        property_mirrored.disconnect(synced.receiver)  # type: ignore[attr-defined]
    assert deliveries and deliveries[-1].status == 204
    new_iid = emulator.forge_installation_id
    assert new_iid != old_iid
    new_mapping = ForgeInstallation.objects.get(installation_id=new_iid)
    assert (new_mapping.tenant_id, new_mapping.source) == (tenant.pk, "reserved-property")
    response = emulator.invoke_remote(f"{app_url}/forge/settings")
    assert response.status_code == 200
    assert response.json()["settings"] == {"flags": {"beta": False, "new": 1}}
    assert emulator.properties(tenant.addon_key) == {"feature-flags": {"beta": False, "new": 1}}


def test_forge_call_for_an_unknown_site_gets_no_data(
    connect_live_install, connect_host_factory, settings
):
    emulator, tenant = connect_live_install()
    store.set("flags", {"secret-ish": "tenant A"}, tenant.client_key)
    stranger = connect_host_factory("jira", forge_app_id=emulator.forge_app_id)
    settings.CONNECT_SETTINGS = {
        **settings.CONNECT_SETTINGS,
        "FORGE_APP_ID": emulator.forge_app_id,
        "FORGE_JWKS_URLS": [stranger.forge_jwks_url],
        "FORGE_API_HOSTS": ["127.0.0.1"],
    }
    app_url = settings.CONNECT_SETTINGS["BASE_URL"]
    response = stranger.invoke_remote(f"{app_url}/forge/settings", system_token=False)
    assert response.status_code == 404
    assert response.json()["error"] == "unknown_installation"
    assert "tenant A" not in response.text
