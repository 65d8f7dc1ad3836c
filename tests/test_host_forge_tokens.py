"""The emulator's Forge identity, its JWKS and the FITs it mints, checked with PyJWT's own
JWKS client over real HTTP, for Jira and Confluence."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
import uuid
from typing import Any

import jwt as pyjwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from connect_settings.host import Emulator
from connect_settings.host.testing import EmulatorFactory
from tests.host_forge_support import verify_fit

pytest_plugins = ["tests.host_fixtures"]

UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
PRIVATE_JWK_MEMBERS = {"d", "p", "q", "dp", "dq", "qi"}


def test_a_site_has_a_forge_identity(host_site: Emulator) -> None:
    assert re.fullmatch(f"ari:cloud:ecosystem::app/{UUID}", host_site.forge_app_id)
    assert re.fullmatch(UUID, host_site.cloud_id)
    assert re.fullmatch(
        f"ari:cloud:ecosystem::installation/{UUID}", host_site.forge_installation_id
    )
    assert host_site.forge_environment == "DEVELOPMENT"
    product = host_site.product.name
    assert host_site.forge_api_base_url == f"{host_site.url}/ex/{product}/{host_site.cloud_id}"
    assert host_site.forge_jwks_url == f"{host_site.url}/forge/.well-known/jwks.json"
    described = requests.get(f"{host_site.url}/_emulator", timeout=10).json()["forge"]
    assert described["appId"] == host_site.forge_app_id
    assert described["cloudId"] == host_site.cloud_id
    assert described["installationId"] == host_site.forge_installation_id
    assert described["jwksUrl"] == host_site.forge_jwks_url
    assert "tokenSecret" not in described and "keys" not in described


def test_the_forge_identity_is_configurable(connect_host_factory: EmulatorFactory) -> None:
    app_id = f"ari:cloud:ecosystem::app/{uuid.uuid4()}"
    emu = connect_host_factory(
        "jira", forge_app_id=app_id, forge_environment="production", forge_connect_key="k"
    )
    assert emu.forge_app_id == app_id
    assert emu.forge_environment == "PRODUCTION"
    assert emu.forge_connect_key == "k"
    claims = verify_fit(emu, emu.mint_fit())
    assert claims["aud"] == claims["app"]["id"] == app_id
    assert claims["app"]["environment"]["type"] == "PRODUCTION"


@pytest.mark.parametrize(
    "options",
    [
        {"forge_app_id": "not-an-ari"},
        {"forge_app_id": "ari:cloud:ecosystem::app/../x"},
        {"forge_environment": "TEST"},
    ],
)
def test_a_bad_forge_configuration_is_refused(options: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="Forge"):
        Emulator("jira", **options)


def test_the_jwks_serves_public_rsa_keys_only(host_site: Emulator) -> None:
    response = requests.get(host_site.forge_jwks_url, timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    keys = response.json()["keys"]
    assert [k["kid"] for k in keys] == [host_site.forge_kid]
    for key in keys:
        assert key["kty"] == "RSA" and key["alg"] == "RS256" and key["use"] == "sig"
        assert {"n", "e"} <= set(key)
        assert not PRIVATE_JWK_MEMBERS & set(key)
    assert requests.post(host_site.forge_jwks_url, timeout=10).status_code == 405


def test_a_backend_fit_verifies_against_the_jwks(host_site: Emulator) -> None:
    token = host_site.mint_fit(module_key="sync-trigger", module_type="core:endpoint")
    header = pyjwt.get_unverified_header(token)
    assert header == {"alg": "RS256", "kid": host_site.forge_kid, "typ": "JWT"}
    claims = verify_fit(host_site, token)
    api_base = host_site.forge_api_base_url
    assert claims["iss"] == "forge/invocation-token"
    assert claims["aud"] == host_site.forge_app_id
    assert claims["nbf"] == claims["iat"] <= time.time() + 1
    assert claims["exp"] - claims["iat"] == 25
    assert re.fullmatch(UUID, claims["jti"])
    assert claims["app"] == {
        "id": host_site.forge_app_id,
        "appVersion": "1.0.0",
        "installationId": host_site.forge_installation_id,
        "apiBaseUrl": api_base,
        "installation": {
            "id": host_site.forge_installation_id,
            "contexts": [{"cloudId": host_site.cloud_id, "apiBaseUrl": api_base}],
        },
        "environment": {
            "type": "DEVELOPMENT",
            "id": claims["app"]["environment"]["id"],
        },
        "module": {"type": "core:endpoint", "key": "sync-trigger"},
    }
    assert claims["app"]["environment"]["id"].startswith(
        "ari:cloud:ecosystem::environment/" + host_site.forge_app_id.rsplit("/", 1)[1] + "/"
    )
    # A backend call: no user, no frontend context.
    assert "principal" not in claims and "context" not in claims and "icLabel" not in claims


def test_a_frontend_fit_carries_the_context_and_the_principal(host_site: Emulator) -> None:
    module_type = "xen:macro" if host_site.product.name == "confluence" else "jira:issuePanel"
    token = host_site.mint_fit(
        module_key="settings-panel",
        module_type=module_type,
        principal=host_site.account_id,
        context={"extension": {"type": module_type, "content": {"id": "42"}}},
        app_license={"isActive": True},
    )
    claims = verify_fit(host_site, token)
    assert claims["principal"] == host_site.account_id
    assert claims["context"] == {
        "cloudId": host_site.cloud_id,
        # The site's origin, without Confluence's /wiki.
        "siteUrl": host_site.url,
        "moduleKey": "settings-panel",
        "extension": {"type": module_type, "content": {"id": "42"}},
    }
    assert claims["app"]["module"] == {"type": module_type, "key": "settings-panel"}
    assert claims["app"]["license"] == {"isActive": True}


def test_every_fit_has_its_own_jti(host_site: Emulator) -> None:
    jtis = {verify_fit(host_site, host_site.mint_fit())["jti"] for _ in range(5)}
    assert len(jtis) == 5


def test_key_rotation_adds_a_kid_and_signs_with_it(host_site: Emulator) -> None:
    old_kid = host_site.forge_kid
    old_token = host_site.mint_fit()
    new_kid = host_site.rotate_forge_key()
    assert new_kid != old_kid and host_site.forge_kid == new_kid
    kids = [k["kid"] for k in requests.get(host_site.forge_jwks_url, timeout=10).json()["keys"]]
    assert kids == [old_kid, new_kid]
    new_token = host_site.mint_fit()
    assert pyjwt.get_unverified_header(new_token)["kid"] == new_kid
    verify_fit(host_site, new_token)
    verify_fit(host_site, old_token)  # tokens in flight stay valid

    host_site.rotate_forge_key(retire_old=True)
    assert len(requests.get(host_site.forge_jwks_url, timeout=10).json()["keys"]) == 1
    with pytest.raises(pyjwt.PyJWKClientError):
        verify_fit(host_site, old_token)


def _other_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"iss": "forge/something-else"}, pyjwt.InvalidIssuerError),
        ({"aud": f"ari:cloud:ecosystem::app/{uuid.uuid4()}"}, pyjwt.InvalidAudienceError),
        ({"now": time.time() - 3600}, pyjwt.ExpiredSignatureError),
        ({"nbf": int(time.time()) + 3600}, pyjwt.ImmatureSignatureError),
        ({"jti": None}, pyjwt.MissingRequiredClaimError),
        ({"kid": "forge-emulator-unknown"}, pyjwt.PyJWKClientError),
        ({"signing_key": "other-rsa"}, pyjwt.InvalidSignatureError),
    ],
    ids=["iss", "aud", "expired", "nbf-future", "no-jti", "unknown-kid", "foreign-key"],
)
def test_hostile_fits_fail_verification(
    host_site: Emulator, options: dict[str, Any], error: type[Exception]
) -> None:
    if options.get("signing_key") == "other-rsa":
        options = {"signing_key": _other_rsa_key()}
    token = host_site.mint_fit(**options)
    with pytest.raises(error):
        verify_fit(host_site, token)


def test_a_fit_for_another_app_names_that_app_everywhere(host_site: Emulator) -> None:
    other = f"ari:cloud:ecosystem::app/{uuid.uuid4()}"
    token = host_site.mint_fit(aud=other, app_overrides={"id": other})
    claims = pyjwt.decode(token, options={"verify_signature": False})
    assert claims["aud"] == claims["app"]["id"] == other
    with pytest.raises(pyjwt.InvalidAudienceError):
        verify_fit(host_site, token)


def test_hs256_confusion_token_is_an_hmac_over_the_jwks_public_key(host_site: Emulator) -> None:
    token = host_site.mint_fit(algorithm="HS256")
    assert pyjwt.get_unverified_header(token)["alg"] == "HS256"
    # A verifier that let the token pick the algorithm and used the PEM as an HMAC secret
    # would accept it: the signature is exactly that HMAC.
    signing_input, _, signature = token.rpartition(".")
    jwk = requests.get(host_site.forge_jwks_url, timeout=10).json()["keys"][0]
    pem = pyjwt.PyJWK(jwk).key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    expected = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
    assert base64.urlsafe_b64decode(signature + "==") == expected
    with pytest.raises(pyjwt.InvalidAlgorithmError):
        verify_fit(host_site, token)


def test_unsigned_and_ic_label_tokens(host_site: Emulator) -> None:
    unsigned = host_site.mint_fit(algorithm="none")
    assert unsigned.endswith(".")
    assert pyjwt.get_unverified_header(unsigned)["alg"] == "none"
    with pytest.raises(pyjwt.PyJWTError):
        verify_fit(host_site, unsigned)
    # The emulator signs any icLabel it is given: judging its shape is the remote's job.
    claims = verify_fit(host_site, host_site.mint_fit(icLabel="../../evil"))
    assert claims["icLabel"] == "../../evil"
    assert verify_fit(host_site, host_site.mint_fit(icLabel="ic-eu_1"))["icLabel"] == "ic-eu_1"


def test_system_and_user_tokens_live_at_most_four_hours(host_site: Emulator) -> None:
    for token in (host_site.system_token(), host_site.user_token()):
        claims = pyjwt.decode(token, options={"verify_signature": False})
        assert claims["exp"] - claims["iat"] == 4 * 3600
    user = pyjwt.decode(host_site.user_token("557058:someone"), options={"verify_signature": False})
    assert user["sub"] == "557058:someone"
    with pytest.raises(ValueError, match="14400"):
        host_site.system_token(ttl=4 * 3600 + 1)
