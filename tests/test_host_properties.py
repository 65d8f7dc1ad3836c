"""The emulator's app properties REST API, row by row of PROTOCOL.md section 5, both products.

Requests are signed here from first principles (``mint_hs256`` + ``query_string_hash`` with
the product's context path), not with the emulator's own helper.
"""

from __future__ import annotations

import json

import pytest
import requests

from connect_settings.host import RESERVED_KEY as RESERVED
from connect_settings.host import Emulator
from tests.host_support import app_jwt, assert_error, call, prop_url

# The fixtures host_site (each product), host_app (a fake app) and host_installed.
pytest_plugins = ["tests.host_fixtures"]


def test_list_starts_empty_and_never_shows_the_reserved_key(host_installed: Emulator) -> None:
    response = call(host_installed, "GET")
    assert response.status_code == 200
    assert response.json() == {"keys": []}


def test_put_creates_201_then_updates_200_and_get_returns_key_value_self(
    host_installed: Emulator,
) -> None:
    created = call(host_installed, "PUT", "colour", json.dumps({"name": "blue", "n": [1, 2]}))
    assert created.status_code == 201
    assert created.json() == {"message": "Property created.", "statusCode": 201}
    updated = call(host_installed, "PUT", "colour", '"red"')
    assert updated.status_code == 200
    assert updated.json() == {"message": "Property updated.", "statusCode": 200}

    got = call(host_installed, "GET", "colour")
    assert got.status_code == 200
    assert got.json() == {
        "key": "colour",
        "value": "red",
        "self": prop_url(host_installed, "colour"),
    }
    listed = call(host_installed, "GET").json()
    assert listed == {"keys": [{"key": "colour", "self": prop_url(host_installed, "colour")}]}
    assert host_installed.properties() == {"colour": "red"}


def test_self_links_carry_the_product_base_url(host_installed: Emulator) -> None:
    call(host_installed, "PUT", "k", "1")
    link = call(host_installed, "GET", "k").json()["self"]
    if host_installed.product.name == "confluence":
        assert link.startswith(host_installed.url + "/wiki/rest/atlassian-connect/1/addons/")
    else:
        assert link.startswith(host_installed.url + "/rest/atlassian-connect/1/addons/")


@pytest.mark.parametrize("key", ["with space", "slash/inside", "ünïcödé", "a&b=c", "x" * 127])
def test_unusual_keys_round_trip_percent_encoded(host_installed: Emulator, key: str) -> None:
    assert call(host_installed, "PUT", key, "true").status_code == 201
    got = call(host_installed, "GET", key)
    assert got.status_code == 200
    assert got.json()["key"] == key
    assert got.json()["self"] == prop_url(host_installed, key)
    assert call(host_installed, "DELETE", key).status_code == 204


def test_get_missing_is_404(host_installed: Emulator) -> None:
    assert_error(call(host_installed, "GET", "nothing-here"), 404)


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_key_longer_than_127_characters_is_400(host_installed: Emulator, method: str) -> None:
    assert_error(call(host_installed, method, "k" * 128, "1"), 400)


def test_key_length_counts_utf16_code_units_like_the_product(host_installed: Emulator) -> None:
    # 63 emoji are 126 UTF-16 units: one more ASCII character fits, two do not.
    assert call(host_installed, "PUT", "😀" * 63 + "a", "1").status_code == 201
    assert_error(call(host_installed, "PUT", "😀" * 63 + "ab", "1"), 400)


@pytest.mark.parametrize(
    "body",
    ["", "   ", "{", "{'single': 'quotes'}", "NaN", "[Infinity]", "undefined", b"\xff\xfe"],
    ids=["empty", "blank", "truncated", "single-quotes", "nan", "infinity", "undefined", "bytes"],
)
def test_invalid_or_empty_json_is_400(host_installed: Emulator, body: str | bytes) -> None:
    assert_error(call(host_installed, "PUT", "k", body), 400)
    assert_error(call(host_installed, "GET", "k"), 404)


@pytest.mark.parametrize("value", ["null", "0", "false", '"text"', "[]", "{}", '{"a": {"b": [1]}}'])
def test_any_json_value_is_accepted(host_installed: Emulator, value: str) -> None:
    assert call(host_installed, "PUT", "k", value).status_code == 201
    assert call(host_installed, "GET", "k").json()["value"] == json.loads(value)


def test_value_up_to_32768_characters_is_accepted_one_more_is_400(host_installed: Emulator) -> None:
    at_limit = json.dumps("x" * (32768 - 2))
    assert len(at_limit) == 32768
    assert call(host_installed, "PUT", "big", at_limit).status_code == 201
    assert_error(call(host_installed, "PUT", "big", json.dumps("x" * (32768 - 1))), 400)
    assert call(host_installed, "GET", "big").json()["value"] == "x" * (32768 - 2)


def test_value_length_counts_utf16_code_units(host_installed: Emulator) -> None:
    # Each emoji is two UTF-16 units: 16383 of them plus the quotes is 32768 units.
    assert call(host_installed, "PUT", "emoji", '"' + "😀" * 16383 + '"').status_code == 201
    assert_error(call(host_installed, "PUT", "emoji", '"' + "😀" * 16384 + '"'), 400)


def test_an_app_stores_at_most_100_properties(host_installed: Emulator) -> None:
    for index in range(100):
        assert call(host_installed, "PUT", f"p{index}", str(index)).status_code == 201
    assert_error(call(host_installed, "PUT", "p100", "100"), 400)
    # Updating one of the hundred is still fine, and so is a new one after a delete.
    assert call(host_installed, "PUT", "p5", "5").status_code == 200
    assert call(host_installed, "DELETE", "p0").status_code == 204
    assert call(host_installed, "PUT", "p100", "100").status_code == 201
    assert len(call(host_installed, "GET").json()["keys"]) == 100


def test_reserved_key_returns_the_client_key_and_is_read_only(host_installed: Emulator) -> None:
    got = call(host_installed, "GET", RESERVED)
    assert got.status_code == 200
    assert got.json() == {
        "key": RESERVED,
        "value": host_installed.client_key,
        "self": prop_url(host_installed, RESERVED),
    }
    assert_error(call(host_installed, "PUT", RESERVED, '"mine"'), 403)
    assert_error(call(host_installed, "DELETE", RESERVED), 403)
    assert call(host_installed, "GET").json() == {"keys": []}
    assert call(host_installed, "GET", RESERVED).json()["value"] == host_installed.client_key


def test_delete_is_204_then_404(host_installed: Emulator) -> None:
    call(host_installed, "PUT", "gone", "1")
    deleted = call(host_installed, "DELETE", "gone")
    assert deleted.status_code == 204
    assert deleted.content == b""
    assert_error(call(host_installed, "GET", "gone"), 404)
    assert_error(call(host_installed, "DELETE", "gone"), 404)


@pytest.mark.parametrize(
    ("method", "prop"),
    [("GET", None), ("GET", "k"), ("PUT", "k"), ("DELETE", "k"), ("GET", RESERVED)],
)
def test_every_endpoint_needs_the_app_jwt(host_installed: Emulator, method: str, prop: str) -> None:
    call(host_installed, "PUT", "k", "1")
    response = call(host_installed, method, prop, "2", sign=False)
    assert_error(response, 401)
    assert host_installed.properties() == {"k": 1}


@pytest.mark.parametrize(("method", "prop"), [("POST", None), ("PUT", None), ("POST", "k")])
def test_other_methods_are_405(host_installed: Emulator, method: str, prop: str | None) -> None:
    response = call(host_installed, method, prop, "1")
    assert_error(response, 405)
    assert "GET" in response.headers["Allow"]


def test_properties_of_other_apps_are_out_of_reach(host_installed: Emulator) -> None:
    # A token of the host_installed app for another app's resource: iss is not that addonKey.
    url = prop_url(host_installed, "k", app_key="com.example.other")
    token = app_jwt(host_installed, "GET", url)
    response = requests.get(url, headers={"Authorization": f"JWT {token}"}, timeout=10)
    assert_error(response, 401)


def test_other_rest_resources_answer_404_json(host_installed: Emulator) -> None:
    response = requests.get(f"{host_installed.base_url}/rest/api/3/myself", timeout=10)
    assert_error(response, 404)
