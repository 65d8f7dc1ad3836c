"""The full round trip: the demo app on a live server, installed into the emulator over HTTP.

install -> page load with the emulator's JWT -> session and context tokens on the app's AJAX
endpoint -> reinstall rotates the secret -> tokens signed with the old secret are refused ->
disable/enable -> uninstall -> page load refused -> install again works.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import requests

from connect_settings.host import Emulator, InstallError
from connect_settings.jwt.tokens import read_unverified

TOKEN_META = re.compile(r'<meta name="token" content="([^"]+)"')


def load_page(emu: Emulator, url: str | None = None) -> requests.Response:
    return requests.get(url or emu.page_url(), timeout=10)


def ajax(base_url: str, token: str) -> requests.Response:
    return requests.get(
        f"{base_url}/api/settings", headers={"Authorization": f"JWT {token}"}, timeout=10
    )


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("product", ["jira", "confluence"])
def test_install_page_reinstall_disable_enable_uninstall_reinstall(
    connect_live_install: Any, live_server: Any, product: str
) -> None:
    emu, tenant = connect_live_install(product)
    app_url = live_server.url
    assert tenant.installed and tenant.enabled
    assert tenant.base_url == emu.base_url
    assert tenant.shared_secret == emu.shared_secret()
    assert [e.event for e in emu.events] == ["installed", "enabled"]
    assert all(e.ok for e in emu.events), [e.detail for e in emu.events]

    # A page load as the product makes it; the page carries a session token.
    page = load_page(emu)
    assert page.status_code == 200, page.text[:500]
    session_token = page.headers["X-acpt"]
    match = TOKEN_META.search(page.text)
    assert match
    _, claims = read_unverified(session_token)
    assert claims["sub"] == emu.account_id
    assert ajax(app_url, session_token).status_code == 200
    # A host context JWT (what AP.context.getToken() returns) is accepted too.
    context_token = emu.context_token()
    assert ajax(app_url, context_token).status_code == 200

    # Reinstall: a new secret; everything signed with the old one is refused.
    stale_page = emu.page_url()
    old_secret = emu.shared_secret()
    emu.reinstall()
    tenant.refresh_from_db()
    assert tenant.shared_secret == emu.shared_secret() != old_secret
    assert load_page(emu, stale_page).status_code == 401
    assert ajax(app_url, context_token).status_code == 401
    assert load_page(emu).status_code == 200
    assert ajax(app_url, emu.context_token()).status_code == 200

    # Disable / enable reach the app (HS256 with the new secret).
    emu.disable()
    tenant.refresh_from_db()
    assert tenant.enabled is False
    assert emu.events[-1].ok
    emu.enable()
    tenant.refresh_from_db()
    assert tenant.enabled is True
    assert load_page(emu).status_code == 200

    # Uninstall: a page URL signed just before is refused afterwards.
    last_page = emu.page_url()
    events = emu.uninstall()
    assert [(e.event, e.ok) for e in events] == [("disabled", True), ("uninstalled", True)]
    tenant.refresh_from_db()
    assert tenant.installed is False
    refused = load_page(emu, last_page)
    assert refused.status_code == 401

    # And installing again works: a new secret, the same clientKey.
    emu.install(app_url)
    tenant.refresh_from_db()
    assert tenant.installed is True
    assert tenant.shared_secret == emu.shared_secret()
    assert load_page(emu).status_code == 200


@pytest.mark.django_db(transaction=True)
def test_the_apps_failed_install_is_reported_like_the_product(
    connect_live_install: Any, live_server: Any, connect_host_factory: Any
) -> None:
    # A second site whose key server the app does not trust: the signed install fails.
    connect_live_install("jira")
    stranger = connect_host_factory("jira")
    with pytest.raises(InstallError) as caught:
        stranger.install(live_server.url)
    assert caught.value.message.startswith(
        "Installation failed. The app host returned HTTP response code 401"
    )
    assert stranger.installations() == []
