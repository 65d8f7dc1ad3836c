"""The product REST API under ``apiBaseUrl`` (``/ex/<product>/<cloudId>/...``) with Bearer
system and user tokens: the same app properties, limits and statuses as the Connect route
(PROTOCOL.md sections 5 and 7), for Jira and Confluence."""

from __future__ import annotations

import json
import time

import pytest
import requests

from connect_settings.host import RESERVED_KEY, Emulator
from connect_settings.host.testing import EmulatorFactory
from tests.host_forge_support import forge_call
from tests.host_support import APP_KEY, app_jwt, assert_error, call, prop_url

pytest_plugins = ["tests.host_fixtures"]


def test_the_forge_app_is_the_installed_connect_app(host_installed: Emulator) -> None:
    assert host_installed.forge_connect_key == APP_KEY
    base = host_installed.forge_api_base_url + host_installed.product.context_path
    assert host_installed.forge_properties_url("k") == (
        f"{base}/rest/atlassian-connect/1/addons/{APP_KEY}/properties/k"
    )


def test_every_status_of_the_properties_api(host_installed: Emulator) -> None:
    emu = host_installed
    assert forge_call(emu, "GET").json() == {"keys": []}
    created = forge_call(emu, "PUT", "colour", json.dumps({"v": "blue"}))
    assert created.status_code == 201
    assert created.json() == {"message": "Property created.", "statusCode": 201}
    updated = forge_call(emu, "PUT", "colour", '"red"')
    assert updated.status_code == 200
    assert updated.json() == {"message": "Property updated.", "statusCode": 200}
    got = forge_call(emu, "GET", "colour")
    assert got.status_code == 200
    # Links point where the caller came from: under apiBaseUrl.
    assert got.json() == {
        "key": "colour",
        "value": "red",
        "self": emu.forge_properties_url("colour"),
    }
    assert forge_call(emu, "GET").json() == {
        "keys": [{"key": "colour", "self": emu.forge_properties_url("colour")}]
    }
    assert_error(forge_call(emu, "GET", "missing"), 404)
    assert_error(forge_call(emu, "GET", "k" * 128), 400)
    assert_error(forge_call(emu, "PUT", "k", "{"), 400)
    assert_error(forge_call(emu, "PUT", "k", ""), 400)
    assert_error(forge_call(emu, "PUT", "k", json.dumps("x" * 32767)), 400)
    assert_error(forge_call(emu, "PUT", RESERVED_KEY, '"mine"'), 403)
    assert_error(forge_call(emu, "DELETE", RESERVED_KEY), 403)
    response = forge_call(emu, "POST", "colour", "1")
    assert_error(response, 405)
    assert response.headers["Allow"] == "GET, PUT, DELETE"
    deleted = forge_call(emu, "DELETE", "colour")
    assert deleted.status_code == 204 and deleted.content == b""
    assert_error(forge_call(emu, "DELETE", "colour"), 404)


def test_the_reserved_property_answers_the_connect_client_key(host_installed: Emulator) -> None:
    got = forge_call(host_installed, "GET", RESERVED_KEY)
    assert got.status_code == 200
    assert got.json() == {
        "key": RESERVED_KEY,
        "value": host_installed.client_key,
        "self": host_installed.forge_properties_url(RESERVED_KEY),
    }
    assert forge_call(host_installed, "GET").json() == {"keys": []}


def test_the_100_property_limit_counts_both_routes(host_installed: Emulator) -> None:
    for index in range(50):
        assert call(host_installed, "PUT", f"c{index}", "1").status_code == 201
        assert forge_call(host_installed, "PUT", f"f{index}", "1").status_code == 201
    assert_error(forge_call(host_installed, "PUT", "one-more", "1"), 400)
    assert_error(call(host_installed, "PUT", "one-more", "1"), 400)


def test_both_routes_serve_the_same_properties(host_installed: Emulator) -> None:
    assert call(host_installed, "PUT", "from-connect", '{"a": 1}').status_code == 201
    assert forge_call(host_installed, "GET", "from-connect").json()["value"] == {"a": 1}
    assert forge_call(host_installed, "PUT", "from-forge", "[2]").status_code == 201
    assert call(host_installed, "GET", "from-forge").json()["value"] == [2]
    assert host_installed.properties() == {"from-connect": {"a": 1}, "from-forge": [2]}


def test_a_user_token_works_too(host_installed: Emulator) -> None:
    token = host_installed.user_token(host_installed.account_id)
    assert forge_call(host_installed, "PUT", "k", "1", token=token).status_code == 201


@pytest.mark.parametrize(
    ("method", "prop"), [("GET", None), ("GET", "k"), ("PUT", "k"), ("DELETE", "k")]
)
def test_bad_tokens_are_401_and_change_nothing(
    host_installed: Emulator, method: str, prop: str | None
) -> None:
    emu = host_installed
    emu.set_property("k", 1)
    expired = emu.system_token(ttl=60, now=time.time() - 3600)
    connect_jwt = app_jwt(emu, method, emu.forge_properties_url(prop))
    for token in (expired, "garbage", emu.forge_jwks_url, expired + "x"):
        response = forge_call(emu, method, prop, "2", token=token)
        assert_error(response, 401)
        assert response.headers["WWW-Authenticate"] == "Bearer"
    assert_error(forge_call(emu, method, prop, "2", sign=False), 401)
    # A Connect JWT is no key to the gateway, in either header scheme.
    headers = {"Authorization": f"JWT {connect_jwt}", "Content-Type": "application/json"}
    url = emu.forge_properties_url(prop)
    assert_error(requests.request(method, url, data="2", headers=headers, timeout=10), 401)
    assert_error(forge_call(emu, method, prop, "2", token=connect_jwt), 401)
    assert emu.properties() == {"k": 1}


def test_expired_token_message_says_so_without_the_token(host_installed: Emulator) -> None:
    token = host_installed.system_token(ttl=60, now=time.time() - 3600)
    body = assert_error(forge_call(host_installed, "GET", token=token), 401)
    assert "expired" in body["message"]
    assert token not in body["message"]


def test_another_sites_token_and_another_cloud_id_are_401(
    host_installed: Emulator, connect_host_factory: EmulatorFactory
) -> None:
    emu = host_installed
    other = connect_host_factory(emu.product.name, forge_connect_key=APP_KEY)
    # The other site's token on this site: not one this site issued.
    assert_error(forge_call(emu, "GET", token=other.system_token()), 401)
    # This site's token under another cloud id in the path: the gateway refuses it.
    url = emu.forge_properties_url().replace(emu.cloud_id, other.cloud_id)
    assert_error(forge_call(emu, "GET", url=url), 401)


def test_only_the_forge_apps_own_properties(host_installed: Emulator) -> None:
    host_installed.set_property("k", 1, key="com.example.other")
    url = host_installed.forge_properties_url("k").replace(APP_KEY, "com.example.other")
    assert_error(forge_call(host_installed, "GET", url=url), 401)


def test_other_products_and_resources(host_installed: Emulator) -> None:
    emu = host_installed
    other_product = "confluence" if emu.product.name == "jira" else "jira"
    url = f"{emu.url}/ex/{other_product}/{emu.cloud_id}/rest/api/3/myself"
    assert_error(forge_call(emu, "GET", url=url), 404)
    # The gateway authenticates before it looks at the resource.
    not_emulated = f"{emu.forge_api_base_url}{emu.product.context_path}/rest/api/3/myself"
    assert_error(forge_call(emu, "GET", url=not_emulated, sign=False), 401)
    assert_error(forge_call(emu, "GET", url=not_emulated), 404)


def test_the_connect_route_is_unchanged(host_installed: Emulator) -> None:
    # A system token is no Connect JWT: the product's own route still wants the app's JWT.
    headers = {"Authorization": f"Bearer {host_installed.system_token()}"}
    response = requests.get(prop_url(host_installed), headers=headers, timeout=10)
    assert_error(response, 401)


def test_faults_apply_to_the_forge_route(host_installed: Emulator) -> None:
    emu = host_installed
    emu.add_fault(429, count=2, retry_after=3)
    for route in (forge_call, call):
        response = route(emu, "GET")
        assert_error(response, 429)
        assert response.headers["Retry-After"] == "3"
    assert forge_call(emu, "GET").status_code == 200
    emu.add_fault(503, method="PUT")
    assert_error(forge_call(emu, "PUT", "k", "1"), 503)
    assert emu.properties() == {}
    emu.add_fault(drop=True)
    with pytest.raises(requests.ConnectionError):
        forge_call(emu, "GET")
    # A fault aimed at /ex/ alone leaves the Connect route alone.
    emu.add_fault(500, path="/ex/")
    assert call(emu, "GET").status_code == 200
    assert_error(forge_call(emu, "GET"), 500)
    assert forge_call(emu, "GET").status_code == 200
