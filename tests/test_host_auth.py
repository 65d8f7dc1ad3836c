"""The emulator refuses every app token the product would refuse, and only those."""

from __future__ import annotations

import base64
import json
import time

import jwt as pyjwt
import pytest
import requests

from connect_settings.host import Emulator
from connect_settings.jwt.canonical import query_string_hash
from connect_settings.jwt.tokens import mint_hs256
from tests.host_support import APP_KEY, FakeApp, app_jwt, assert_error, prop_url

# The fixtures host_site (each product), host_app (a fake app) and host_installed.
pytest_plugins = ["tests.host_fixtures"]


def get(emu: Emulator, token: str | None, *, scheme: str = "JWT") -> requests.Response:
    headers = {} if token is None else {"Authorization": f"{scheme} {token}"}
    return requests.get(prop_url(emu), headers=headers, timeout=10)


def test_a_correct_token_is_accepted(host_installed: Emulator) -> None:
    assert (
        get(host_installed, app_jwt(host_installed, "GET", prop_url(host_installed))).status_code
        == 200
    )


def test_the_emulators_own_app_token_helper_agrees(host_installed: Emulator) -> None:
    token = host_installed.app_token("GET", prop_url(host_installed))
    assert get(host_installed, token).status_code == 200


def test_missing_token_is_401(host_installed: Emulator) -> None:
    response = get(host_installed, None)
    assert_error(response, 401)
    assert response.headers["WWW-Authenticate"] == "JWT"


@pytest.mark.parametrize("scheme", ["Bearer", "Basic"])
def test_other_schemes_are_401(host_installed: Emulator, scheme: str) -> None:
    assert_error(
        get(
            host_installed, app_jwt(host_installed, "GET", prop_url(host_installed)), scheme=scheme
        ),
        401,
    )


@pytest.mark.parametrize("token", ["", "garbage", "a.b.c", "x" * 9000, "é.é.é"])
def test_malformed_tokens_are_401(host_installed: Emulator, token: str) -> None:
    assert_error(get(host_installed, token), 401)


def test_the_token_may_travel_as_the_jwt_query_parameter(host_installed: Emulator) -> None:
    url = prop_url(host_installed)
    response = requests.get(url, params={"jwt": app_jwt(host_installed, "GET", url)}, timeout=10)
    assert response.status_code == 200


def test_old_secret_is_refused_after_reinstall(host_installed: Emulator, host_app: FakeApp) -> None:
    old_secret = host_installed.shared_secret()
    host_installed.reinstall()
    new_secret = host_installed.shared_secret()
    assert new_secret != old_secret
    assert host_app.shared_secret == new_secret
    url = prop_url(host_installed)
    assert_error(get(host_installed, app_jwt(host_installed, "GET", url, secret=old_secret)), 401)
    assert (
        get(host_installed, app_jwt(host_installed, "GET", url, secret=new_secret)).status_code
        == 200
    )


def test_wrong_secret_is_401(host_installed: Emulator) -> None:
    token = app_jwt(
        host_installed, "GET", prop_url(host_installed), secret="not-the-shared-secret" * 3
    )
    assert_error(get(host_installed, token), 401)


@pytest.mark.parametrize("iss", ["com.example.other", APP_KEY + ".evil", APP_KEY.upper(), ""])
def test_wrong_iss_is_401(host_installed: Emulator, iss: str) -> None:
    token = app_jwt(host_installed, "GET", prop_url(host_installed), iss=iss)
    assert_error(get(host_installed, token), 401)


def test_client_key_as_iss_is_401(host_installed: Emulator) -> None:
    # A host token (iss = clientKey) is not an app token.
    token = app_jwt(host_installed, "GET", prop_url(host_installed), iss=host_installed.client_key)
    assert_error(get(host_installed, token), 401)


@pytest.mark.parametrize(
    "qsh",
    [
        "context-qsh",
        "0" * 64,
        query_string_hash("PUT", "/rest/atlassian-connect/1/addons/x/properties"),
        None,
    ],
    ids=["context-qsh", "zeros", "other-request", "absent"],
)
def test_bad_qsh_is_401(host_installed: Emulator, qsh: str | None) -> None:
    claims = {"iss": APP_KEY} if qsh is None else {"iss": APP_KEY, "qsh": qsh}
    token = mint_hs256(claims, host_installed.shared_secret())
    response = get(host_installed, token)
    assert_error(response, 401)


def test_qsh_for_another_method_is_401(host_installed: Emulator) -> None:
    token = app_jwt(host_installed, "DELETE", prop_url(host_installed))
    assert_error(get(host_installed, token), 401)


def test_qsh_must_cover_the_query(host_installed: Emulator) -> None:
    url = prop_url(host_installed)
    token = app_jwt(host_installed, "GET", url)  # signed without the query
    response = requests.get(
        url + "?expand=all", headers={"Authorization": f"JWT {token}"}, timeout=10
    )
    assert_error(response, 401)
    token = app_jwt(host_installed, "GET", url + "?expand=all")
    response = requests.get(
        url + "?expand=all", headers={"Authorization": f"JWT {token}"}, timeout=10
    )
    assert response.status_code == 200


def test_qsh_is_relative_to_the_product_context_path(host_installed: Emulator) -> None:
    # The classic mistake: hashing the full path. For Jira the two are the same.
    url = prop_url(host_installed)
    path = url[len(host_installed.url) :]
    full_path_qsh = query_string_hash("GET", path, "")
    token = mint_hs256({"iss": APP_KEY, "qsh": full_path_qsh}, host_installed.shared_secret())
    expected = 200 if host_installed.product.name == "jira" else 401
    assert get(host_installed, token).status_code == expected


def test_expired_token_is_401_but_30_seconds_of_skew_are_tolerated(
    host_installed: Emulator,
) -> None:
    url = prop_url(host_installed)
    now = time.time()
    expired = app_jwt(host_installed, "GET", url, iat=int(now - 300), exp=int(now - 60))
    assert_error(get(host_installed, expired), 401)
    skewed = app_jwt(host_installed, "GET", url, iat=int(now - 200), exp=int(now - 20))
    assert get(host_installed, skewed).status_code == 200


def test_token_issued_in_the_future_beyond_leeway_is_401(host_installed: Emulator) -> None:
    now = int(time.time())
    token = app_jwt(host_installed, "GET", prop_url(host_installed), iat=now + 120, exp=now + 300)
    assert_error(get(host_installed, token), 401)


def test_token_without_exp_is_401(host_installed: Emulator) -> None:
    url = prop_url(host_installed)
    qsh = query_string_hash("GET", url[len(host_installed.base_url) :], "")
    claims = {"iss": APP_KEY, "qsh": qsh, "iat": int(time.time())}
    token = pyjwt.encode(claims, host_installed.shared_secret(), algorithm="HS256")
    assert_error(get(host_installed, token), 401)


def test_alg_none_is_401(host_installed: Emulator) -> None:
    def part(data: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    signed = app_jwt(host_installed, "GET", prop_url(host_installed))
    claims = json.loads(base64.urlsafe_b64decode(signed.split(".")[1] + "=="))
    token = f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."
    assert_error(get(host_installed, token), 401)


def test_aud_must_name_this_site_when_present(host_installed: Emulator) -> None:
    url = prop_url(host_installed)
    ok = app_jwt(host_installed, "GET", url, aud=[host_installed.client_key])
    assert get(host_installed, ok).status_code == 200
    wrong = app_jwt(host_installed, "GET", url, aud=["another-host_site"])
    assert_error(get(host_installed, wrong), 401)


def test_disabled_app_is_401_until_enabled(host_installed: Emulator) -> None:
    host_installed.disable()
    url = prop_url(host_installed)
    assert_error(get(host_installed, app_jwt(host_installed, "GET", url)), 401)
    host_installed.enable()
    assert get(host_installed, app_jwt(host_installed, "GET", url)).status_code == 200


def test_uninstalled_app_is_401(host_installed: Emulator) -> None:
    secret = host_installed.shared_secret()
    host_installed.uninstall()
    token = app_jwt(host_installed, "GET", prop_url(host_installed), secret=secret)
    assert_error(get(host_installed, token), 401)


def test_refusals_never_echo_the_secret(host_installed: Emulator) -> None:
    secret = host_installed.shared_secret()
    for token in (app_jwt(host_installed, "PUT", prop_url(host_installed)), "x.y.z", secret):
        response = get(host_installed, token)
        assert response.status_code == 401
        assert secret not in response.text
