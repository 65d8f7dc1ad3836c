"""Page loads as the product makes them, context tokens, the admin page and the AP stand-in."""

from __future__ import annotations

import re
import time
from html import unescape
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from connect_settings.host import AppNotInstalled, Emulator
from connect_settings.jwt.canonical import CONTEXT_QSH, query_string_hash
from connect_settings.jwt.tokens import read_unverified, verify_hs256
from tests.host_support import APP_KEY, FakeApp

pytest_plugins = ["tests.host_fixtures"]


def test_page_url_is_signed_like_the_product_and_the_app_accepts_it(
    host_installed: Emulator, host_app: FakeApp
) -> None:
    url = host_installed.page_url()
    parts = urlsplit(url)
    assert url.startswith(host_app.base_url + "/configure?")
    params = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    assert params["xdm_e"] == host_installed.url
    assert params["xdm_c"] == f"channel-{APP_KEY}__configure"
    assert params["cp"] == host_installed.product.context_path
    assert params["lic"] == "none"
    assert params["xdm_deprecated_addon_key_do_not_use"] == APP_KEY
    assert {"tz", "loc", "cv", "jwt"} <= set(params)
    # The app opted into the GDPR migration: no user_id / user_key.
    assert "user_id" not in params and "user_key" not in params

    claims = verify_hs256(params["jwt"], host_installed.shared_secret(), leeway=0)
    assert claims["iss"] == host_installed.client_key
    assert claims["sub"] == host_installed.account_id
    assert claims["context"] == {}
    assert claims["exp"] - claims["iat"] == 180
    assert claims["qsh"] == query_string_hash("GET", parts.path, parts.query, "/app")

    response = requests.get(url, timeout=10)
    assert response.status_code == 200, response.text
    assert response.json()["claims"]["sub"] == host_installed.account_id


def test_page_url_of_a_module_with_its_own_query(
    host_installed: Emulator, host_app: FakeApp
) -> None:
    url = host_installed.page_url(module="overview")
    assert url.startswith(host_app.base_url + "/overview?tab=main&")
    assert requests.get(url, timeout=10).status_code == 200


def test_url_variables_are_substituted(host_installed: Emulator, host_app: FakeApp) -> None:
    host_app.descriptor_overrides["modules"] = {
        "generalPages": [
            {"key": "p", "url": "/p?project={project.key}&x={unknown}", "name": {"value": "P"}}
        ]
    }
    host_installed.reinstall()
    url = host_installed.page_url(context={"project.key": "A B"})
    params = parse_qs(urlsplit(url).query, keep_blank_values=True)
    assert params["project"] == ["A B"]
    assert params["x"] == [""]
    assert requests.get(url, timeout=10).status_code == 200


def test_apps_without_the_gdpr_migration_get_user_id(
    host_installed: Emulator, host_app: FakeApp
) -> None:
    host_app.descriptor_overrides["apiMigrations"] = {"signed-install": True}
    host_installed.reinstall()
    params = parse_qs(urlsplit(host_installed.page_url()).query)
    assert "user_id" in params and "user_key" in params


def test_a_page_url_signed_before_a_reinstall_is_refused_by_the_app(
    host_installed: Emulator,
) -> None:
    stale = host_installed.page_url()
    host_installed.reinstall()
    assert requests.get(stale, timeout=10).status_code == 401
    assert requests.get(host_installed.page_url(), timeout=10).status_code == 200


def test_no_page_urls_for_disabled_or_missing_apps_or_modules(host_installed: Emulator) -> None:
    with pytest.raises(LookupError, match="no page module 'nope'"):
        host_installed.page_url(module="nope")
    host_installed.disable()
    with pytest.raises(AppNotInstalled, match="disabled"):
        host_installed.page_url()
    with pytest.raises(AppNotInstalled):
        host_installed.page_url("com.example.absent")


def test_page_url_over_the_control_api(host_installed: Emulator) -> None:
    response = requests.get(
        f"{host_installed.url}/_emulator/apps/{APP_KEY}/page-url",
        params={"module": "overview"},
        timeout=10,
    )
    assert response.status_code == 200
    assert "/overview?" in response.json()["url"]
    missing = requests.get(
        f"{host_installed.url}/_emulator/apps/{APP_KEY}/page-url",
        params={"module": "x"},
        timeout=10,
    )
    assert missing.status_code == 404


def test_context_token_is_hs256_with_context_qsh(host_installed: Emulator) -> None:
    response = requests.post(
        f"{host_installed.url}/_emulator/apps/{APP_KEY}/context-token", json={}, timeout=10
    )
    assert response.status_code == 200
    token = response.json()["token"]
    header, _ = read_unverified(token)
    assert header["alg"] == "HS256"
    claims = verify_hs256(token, host_installed.shared_secret(), leeway=0)
    assert claims["qsh"] == CONTEXT_QSH
    assert claims["iss"] == host_installed.client_key
    assert claims["sub"] == host_installed.account_id
    assert 180 <= claims["exp"] - claims["iat"] <= 900
    assert claims["exp"] > time.time()


def test_context_token_needs_a_json_post(host_installed: Emulator) -> None:
    url = f"{host_installed.url}/_emulator/apps/{APP_KEY}/context-token"
    assert requests.get(url, timeout=10).status_code == 404
    assert requests.post(url, data="x", timeout=10).status_code == 415


def _iframe_src(html: str) -> str:
    match = re.search(r'<iframe id="ap-frame" src="([^"]+)"', html)
    assert match, "no iframe on the page"
    return unescape(match.group(1))


def test_admin_page_shows_the_app_and_its_configure_page_in_an_iframe(
    host_installed: Emulator, host_app: FakeApp
) -> None:
    response = requests.get(host_installed.url + "/", timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/html")
    html = response.text
    assert "Manage apps" in html
    assert "Fake app" in html and "ENABLED" in html
    for action in ("disable", "reinstall", "uninstall"):
        assert f'data-action="{action}" data-app="{APP_KEY}"' in html
    src = _iframe_src(html)
    assert src.startswith(host_app.base_url + "/configure?")
    # Freshly signed, and loadable by the app.
    assert requests.get(src, timeout=10).status_code == 200
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp
    assert host_app.origin in csp
    assert host_installed.shared_secret() not in html


def test_admin_page_selects_a_module(host_installed: Emulator, host_app: FakeApp) -> None:
    html = requests.get(
        host_installed.url + "/", params={"app": APP_KEY, "module": "overview"}, timeout=10
    ).text
    assert _iframe_src(html).startswith(host_app.base_url + "/overview?")


def test_admin_page_is_also_at_the_products_manage_apps_path(host_installed: Emulator) -> None:
    url = f"{host_installed.base_url}/plugins/servlet/upm"
    assert "Manage apps" in requests.get(url, timeout=10).text


def test_admin_page_escapes_what_the_descriptor_says(
    host_site: Emulator, host_app: FakeApp
) -> None:
    host_app.descriptor_overrides["name"] = '<script>alert("x")</script>'
    host_site.install(host_app.base_url)
    html = requests.get(host_site.url + "/", timeout=10).text
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert" in html


def test_admin_page_without_apps(host_site: Emulator) -> None:
    html = requests.get(host_site.url + "/", timeout=10).text
    assert "No apps installed" in html
    assert "ap-frame" not in html


def test_admin_page_shows_no_iframe_for_a_disabled_app(host_installed: Emulator) -> None:
    host_installed.disable()
    html = requests.get(host_installed.url + "/", timeout=10).text
    assert "DISABLED" in html
    assert "ap-frame" not in html


@pytest.mark.parametrize(
    "path", ["/_emulator/host.js", "/_emulator/host.css", "/atlassian-connect/all.js"]
)
def test_assets_are_served(host_site: Emulator, path: str) -> None:
    response = requests.get(host_site.url + path, timeout=10)
    assert response.status_code == 200
    assert response.text.strip()


def test_all_js_is_also_under_the_context_path(host_site: Emulator) -> None:
    response = requests.get(f"{host_site.base_url}/atlassian-connect/all.js", timeout=10)
    assert response.status_code == 200
    assert "getToken" in response.text
    assert response.headers["Content-Type"].startswith("application/javascript")
