"""Our outgoing app tokens, checked by Atlassian's own JS library (``atlassian-jwt``, npm).

The emulator accepting them is one check; this is an independent one: atlassian-jwt decodes
each token with the tenant's secret and computes the qsh of the request we actually sent.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from connect_settings.client import HostClient
from tests.node_support import AtlassianJwt, install_atlassian_jwt

pytestmark = pytest.mark.node


@pytest.fixture(scope="module")
def atlassian_jwt(tmp_path_factory: pytest.TempPathFactory) -> AtlassianJwt:
    return install_atlassian_jwt(tmp_path_factory.mktemp("atlassian-jwt"))


@pytest.mark.parametrize("product", ["jira", "confluence"])
def test_outgoing_tokens_verify_with_atlassian_jwt(connect_live_install, atlassian_jwt, product):
    emulator, tenant = connect_live_install(product)
    base = f"/rest/atlassian-connect/1/addons/{tenant.addon_key}/properties"
    responses = [
        HostClient(tenant).get(base),
        HostClient(tenant).get(base, params={"expand": "a b", "ids": ["2", "1"], "q": "x*~"}),
        HostClient(tenant).put(f"{base}/colour", json="blue"),
        HostClient(tenant).delete(f"{base}/colour"),
    ]
    assert [r.status_code for r in responses] == [200, 200, 201, 204]
    assert emulator.properties() == {}  # put, then deleted
    items = []
    for response in responses:
        token = response.request.headers["Authorization"].removeprefix("JWT ")
        url = urlsplit(response.request.url)
        items.append(
            {
                "token": token,
                "method": response.request.method,
                "url": f"{url.path}?{url.query}" if url.query else url.path,
                "baseUrl": tenant.base_url,
            }
        )
    claims = atlassian_jwt.run_ok(
        "decode", [{"token": i["token"], "secret": tenant.shared_secret} for i in items]
    )
    computed = atlassian_jwt.run_ok(
        "canonical", [{k: i[k] for k in ("method", "url", "baseUrl")} for i in items]
    )
    for claim, expected in zip(claims, computed, strict=True):
        assert claim["iss"] == "com.example.connect-settings-demo"
        assert claim["qsh"] == expected["qsh"]
        assert claim["exp"] - claim["iat"] == 180
    # And a token signed with another secret is refused by the same library.
    bad = atlassian_jwt.run("decode", [{"token": items[0]["token"], "secret": "x" * 40}])
    assert "error" in bad[0]
