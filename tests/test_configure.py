"""The configure page and its save, through real views and a real database."""

from __future__ import annotations

import json
import logging
import re
import time
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import Client

from connect_settings import store
from connect_settings.auth import mint_session_token
from connect_settings.configuration import save_configuration, values_for
from connect_settings.forms import (
    SecretInput,
    build_form,
    configure_form_class,
    describe_change,
    secret_field_names,
)
from connect_settings.jwt.tokens import mint_hs256, read_unverified
from connect_settings.models import AddonSetting, Configuration, ConfigurationChange, Tenant
from connect_settings.signals import setting_changed
from connect_settings.testing import DEFAULT_SECRET, make_tenant, page_token, signed_url

pytestmark = pytest.mark.django_db

PAGE = "/configure?xdm_e=https%3A%2F%2Fexample.atlassian.net&cp=&lic=none&tz=UTC&loc=en-US"
OTHER_SECRET = "other-tenant-secret-0123456789-0123456789-abc"
TOKEN_VALUE = "tok-SECRET-9f8e7d6c5b4a"
USER = "557058:test-user"

DEFAULTS = {
    "team_name": "Support",
    "default_priority": "medium",
    "notify": True,
    "results_per_page": 25,
    "channels": ["email"],
    "project_keys": [],
    "api_token": {"secret": True, "set": False},
}


# --- helpers ---------------------------------------------------------------------------------


def _app_settings(html: str) -> dict[str, Any]:
    match = re.search(
        r'<script id="app-settings" type="application/json">(.*?)</script>', html, re.S
    )
    assert match, "the page has no app-settings script"
    return json.loads(match.group(1))


def _session(tenant: Tenant | None = None, account_id: str | None = USER, **kw: Any) -> str:
    return mint_session_token(
        tenant or Tenant.objects.get(client_key="test-client-key"), account_id, **kw
    )


def _post(
    client: Client,
    body: Any,
    token: str | None,
    *,
    content_type: str = "application/json",
    raw: bytes | None = None,
    **extra: Any,
) -> Any:
    headers = {"HTTP_AUTHORIZATION": f"JWT {token}"} if token else {}
    data = raw if raw is not None else json.dumps(body)
    return client.post("/configure", data=data, content_type=content_type, **headers, **extra)


def _save(client: Client, values: dict[str, Any], version: int | None = 0, **kw: Any) -> Any:
    body: dict[str, Any] = {"values": values}
    if version is not None:
        body["version"] = version
    return _post(client, body, kw.pop("token", None) or _session(), **kw)


def _snapshot() -> tuple[Any, ...]:
    """Everything a refused save must leave alone."""
    return (
        list(AddonSetting.objects.order_by("pk").values_list("tenant_id", "key", "value")),
        list(Configuration.objects.order_by("pk").values_list("tenant_id", "version")),
        ConfigurationChange.objects.count(),
    )


def _assert_refused(response: Any, status: int, code: str, before: tuple[Any, ...]) -> None:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"] == code
    assert _snapshot() == before


# --- the page --------------------------------------------------------------------------------


def test_page_renders_the_form_with_defaults_token_and_state(client, connect_tenant):
    response = client.get(signed_url("test-client-key", DEFAULT_SECRET, PAGE))
    assert response.status_code == 200
    html = response.content.decode()
    session = response["X-acpt"]
    assert f'<meta name="token" content="{session}">' in html
    assert _app_settings(html) == {"values": DEFAULTS, "version": 0}
    # Every field is labelled for screen readers and described by its help and error boxes.
    for name in DEFAULTS:
        assert f'data-field="{name}"' in html
    assert '<label class="cs-label" for="id_team_name">Team name' in html
    assert 'aria-describedby="id_team_name_helptext id_team_name_error"' in html
    assert '<legend class="cs-label">Notification channels</legend>' in html
    assert '<label for="id_notify">' in html
    assert 'min="1" max="100"' in html  # the number's bounds come from the form
    # Assets ship with the package; all.js comes from Atlassian's CDN inside a product.
    assert "/static/connect_settings/configure.js" in html
    assert "/static/connect_settings/configure.css" in html
    assert '<script src="https://connect-cdn.atl-paas.net/all.js" async></script>' in html
    assert response["Content-Security-Policy"] == "frame-ancestors https://example.atlassian.net"
    assert "X-Frame-Options" not in response
    assert response["Cache-Control"] == "no-store"


def test_demo_overrides_the_template_and_the_package_template_stands_alone(
    client, connect_tenant, settings
):
    html = client.get(signed_url("test-client-key", DEFAULT_SECRET, PAGE)).content.decode()
    assert "data-demo-brand" in html and "<h1>Escalation settings</h1>" in html
    assert 'id="cs-configure"' in html  # the package's blocks are still there
    settings.TEMPLATES = [{**settings.TEMPLATES[0], "DIRS": []}]
    html = client.get(signed_url("test-client-key", DEFAULT_SECRET, PAGE)).content.decode()
    assert "data-demo-brand" not in html and "<h1>Configure</h1>" in html


def test_all_js_only_when_framed_and_from_the_tenants_own_host_when_local(
    client, connect_tenant, settings
):
    def page(url: str, client_key: str = "test-client-key", secret: str = DEFAULT_SECRET) -> str:
        return client.get(signed_url(client_key, secret, url)).content.decode()

    assert "all.js" not in page("/configure?lic=none")  # not framed: no host API
    settings.CONNECT_SETTINGS = {**settings.CONNECT_SETTINGS, "HOST_SCRIPT_URL": ""}
    assert "all.js" not in page(PAGE)
    # A local host (the emulator) serves its own all.js; only its own origin is trusted.
    make_tenant("local", OTHER_SECRET, base_url="http://127.0.0.1:9000/wiki")
    html = page("/configure?xdm_e=http%3A%2F%2F127.0.0.1%3A9000&cp=%2Fwiki", "local", OTHER_SECRET)
    assert '<script src="http://127.0.0.1:9000/wiki/atlassian-connect/all.js" async>' in html
    html = page("/configure?xdm_e=http%3A%2F%2Fevil.test&cp=", "local", OTHER_SECRET)
    assert "all.js" not in html


def test_display_url_origin_may_frame_the_page_too(client):
    make_tenant(display_url="https://jira.example.com")
    response = client.get(signed_url("test-client-key", DEFAULT_SECRET, PAGE))
    assert response["Content-Security-Policy"] == (
        "frame-ancestors https://example.atlassian.net https://jira.example.com"
    )
    # Other pages keep Django's clickjacking protection.
    assert client.get("/health")["X-Frame-Options"] == "DENY"


def test_page_never_renders_a_stored_secret(client, connect_tenant):
    assert _save(client, {"api_token": TOKEN_VALUE}).status_code == 200
    response = client.get(signed_url("test-client-key", DEFAULT_SECRET, PAGE))
    html = response.content.decode()
    assert TOKEN_VALUE not in html
    assert _app_settings(html)["values"]["api_token"] == {"secret": True, "set": True}
    assert "A value is set." in html
    assert 'name="api_token__clear"' in html
    assert re.search(r'<input type="password" name="api_token"(?![^>]*value=)[^>]*>', html)


def test_hostile_values_are_escaped_in_the_form_the_json_and_the_history(client, connect_tenant):
    evil = '</script><script>alert(1)</script>"><img src=x onerror=alert(2)>'
    assert _save(client, {"team_name": evil[:80]}).status_code == 200
    html = client.get(signed_url("test-client-key", DEFAULT_SECRET, PAGE)).content.decode()
    assert "<script>alert(1)" not in html and "<img src=x" not in html
    assert _app_settings(html)["values"]["team_name"] == evil[:80]


def test_page_reads_the_settings_once_without_joining_tenants(client, connect_tenant):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    assert _save(client, {"team_name": "Ops"}).status_code == 200
    url = signed_url("test-client-key", DEFAULT_SECRET, PAGE)
    client.get(url)  # warms the tenant cache
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200
    sql = [q["sql"] for q in queries.captured_queries]
    settings_reads = [q for q in sql if "connect_settings_addonsetting" in q]
    assert len(settings_reads) == 1, sql
    assert not any("connect_settings_tenant" in q for q in sql), sql


def test_page_shows_recent_history_with_secrets_redacted(client, connect_tenant, settings):
    settings.CONNECT_SETTINGS = {**settings.CONNECT_SETTINGS, "CONFIGURE_HISTORY_ON_PAGE": 2}
    for version, team in enumerate(["Ops", "Platform", "Payments"]):
        values = {"team_name": team, "api_token": f"{TOKEN_VALUE}-{version}"}
        assert _save(client, values, version).status_code == 200
    html = client.get(signed_url("test-client-key", DEFAULT_SECRET, PAGE)).content.decode()
    assert TOKEN_VALUE not in html
    history = html[html.index('id="cs-history-list"') :]
    assert history.count('class="cs-history-entry"') == 2
    assert "version 3" in history and "version 2" in history and "version 1" not in history
    assert '<span class="cs-history-from">Platform</span>' in history
    assert '<span class="cs-history-to">Payments</span>' in history
    assert "replaced (secret)" in history
    assert USER in history


def test_page_is_refused_for_disabled_or_uninstalled_tenants(client):
    make_tenant(enabled=False)
    response = client.get(signed_url("test-client-key", DEFAULT_SECRET, PAGE))
    assert response.status_code == 403 and response.json()["error"] == "tenant_disabled"
    assert _save(client, {"team_name": "X"}).json()["error"] == "tenant_disabled"
    make_tenant(installed=False)
    response = client.get(signed_url("test-client-key", DEFAULT_SECRET, PAGE))
    assert response.status_code == 401 and response.json()["error"] == "uninstalled_tenant"
    assert ConfigurationChange.objects.count() == 0


def test_other_methods_are_405_json(client, connect_tenant):
    response = client.put("/configure", data="{}", HTTP_AUTHORIZATION=f"JWT {_session()}")
    assert response.status_code == 405
    assert response.json()["error"] == "method_not_allowed"
    assert response["Allow"] == "GET, HEAD, POST"


# --- the save: success -----------------------------------------------------------------------


def test_save_stores_values_bumps_version_records_history(
    client, connect_tenant, django_capture_on_commit_callbacks
):
    seen: list[dict[str, Any]] = []
    setting_changed.connect(lambda **kw: seen.append(kw), weak=False, dispatch_uid="t-configure")
    try:
        with django_capture_on_commit_callbacks(execute=True):
            response = _save(
                client,
                {
                    "team_name": "  Platform  ",
                    "results_per_page": "50",
                    "channels": ["slack", "email"],
                    "project_keys": ["OPS", " SUP ", ""],
                    "notify": False,
                    "api_token": TOKEN_VALUE,
                },
            )
    finally:
        setting_changed.disconnect(dispatch_uid="t-configure")
    assert response.status_code == 200, response.content
    body = response.json()
    expected = {
        **DEFAULTS,
        "team_name": "Platform",
        "results_per_page": 50,
        "channels": ["slack", "email"],
        "project_keys": ["OPS", "SUP"],
        "notify": False,
        "api_token": {"secret": True, "set": True},
    }
    assert body["values"] == expected
    assert body["version"] == 1
    assert body["mirror"] == {}
    assert body["updated_at"].startswith(time.strftime("%Y-", time.gmtime()))
    assert sorted(body["changed"]) == sorted(
        ["team_name", "results_per_page", "channels", "project_keys", "notify", "api_token"]
    )
    assert TOKEN_VALUE not in response.content.decode()
    # A fresh session token for the same tenant and user.
    claims = read_unverified(response["X-acpt"])[1]
    assert claims["aud"] == ["test-client-key"] and claims["sub"] == USER
    # Stored as one JSON object under CONFIGURE_SETTING_KEY, the secret with it.
    stored = store.get("appSettings", "test-client-key")
    assert stored["api_token"] == TOKEN_VALUE and stored["results_per_page"] == 50
    assert values_for("test-client-key") == stored
    assert Configuration.objects.get().version == 1
    assert Configuration.objects.get().updated_by == USER
    change = ConfigurationChange.objects.get()
    assert (change.version, change.account_id, change.source) == (1, USER, "page")
    assert change.changes["team_name"] == {"from": "Support", "to": "Platform"}
    assert change.changes["api_token"] == {
        "from": {"secret": True, "set": False},
        "to": {"secret": True, "set": True},
    }
    assert TOKEN_VALUE not in json.dumps(change.changes)
    assert len(seen) == 1 and seen[0]["key"] == "appSettings"


def test_save_with_a_host_context_jwt_records_its_user(client, connect_tenant):
    token = page_token(
        "test-client-key", DEFAULT_SECRET, "GET", "/x", qsh="context-qsh", sub="acct-ctx"
    )
    response = _save(client, {"team_name": "Ops"}, token=token)
    assert response.status_code == 200
    assert ConfigurationChange.objects.get().account_id == "acct-ctx"


def test_fields_left_out_keep_their_values_and_version_is_optional(client, connect_tenant):
    assert _save(client, {"team_name": "Ops", "api_token": TOKEN_VALUE}).status_code == 200
    # No version: last write wins, as in ACE (API clients).
    response = _save(client, {"results_per_page": 10}, version=None)
    assert response.status_code == 200 and response.json()["version"] == 2
    stored = store.get("appSettings", "test-client-key")
    assert stored["team_name"] == "Ops" and stored["results_per_page"] == 10
    assert stored["api_token"] == TOKEN_VALUE  # left out: kept


def test_saving_unchanged_values_keeps_the_version_and_writes_no_history(client, connect_tenant):
    response = _save(client, {"team_name": "Support", "api_token": {"secret": True, "set": False}})
    assert response.status_code == 200
    assert response.json()["version"] == 0 and response.json()["changed"] == []
    assert ConfigurationChange.objects.count() == 0
    assert store.get("appSettings", "test-client-key") is None


def test_secret_is_kept_replaced_and_cleared(client, connect_tenant):
    def stored_token() -> Any:
        return store.get("appSettings", "test-client-key").get("api_token")

    assert _save(client, {"api_token": TOKEN_VALUE}, 0).status_code == 200
    # The redacted marker sent back (a client round-tripping the values) keeps the secret.
    marker = {"secret": True, "set": True}
    response = _save(client, {"team_name": "Ops", "api_token": marker}, 1)
    assert response.json()["version"] == 2 and stored_token() == TOKEN_VALUE
    assert _save(client, {"api_token": "new-" + TOKEN_VALUE}, 2).status_code == 200
    assert stored_token() == "new-" + TOKEN_VALUE
    assert ConfigurationChange.objects.get(version=3).changes == {
        "api_token": {"from": marker, "to": marker}
    }
    assert _save(client, {"api_token": ""}, 3).status_code == 200
    assert stored_token() == ""
    assert _save(client, {"api_token": "x"}, 4).status_code == 200
    assert _save(client, {"api_token": None}, 5).status_code == 200
    assert stored_token() == ""
    history = json.dumps(list(ConfigurationChange.objects.values_list("changes", flat=True)))
    assert TOKEN_VALUE not in history


def test_secret_never_logged(client, connect_tenant, caplog):
    with caplog.at_level(logging.DEBUG):
        assert _save(client, {"api_token": TOKEN_VALUE}).status_code == 200
        _save(client, {"api_token": TOKEN_VALUE + " with space", "results_per_page": 0}, 1)
    assert "saved as version 1" in caplog.text
    assert TOKEN_VALUE not in caplog.text


def test_keys_the_form_no_longer_declares_are_kept(client, connect_tenant):
    store.set("appSettings", {"legacy": {"a": 1}, "team_name": "Old"}, "test-client-key")
    response = _save(client, {"results_per_page": 30})
    assert response.status_code == 200
    assert "legacy" not in response.json()["values"]
    stored = store.get("appSettings", "test-client-key")
    assert stored["legacy"] == {"a": 1} and stored["team_name"] == "Old"


def test_tenants_are_isolated(client, connect_tenant):
    other = make_tenant("other-key", OTHER_SECRET, base_url="https://other.atlassian.net")
    response = _save(client, {"team_name": "Theirs"}, token=_session(other))
    assert response.status_code == 200
    assert store.get("appSettings", "other-key")["team_name"] == "Theirs"
    assert store.get("appSettings", "test-client-key") is None
    assert ConfigurationChange.objects.get().tenant_id == other.pk


# --- the save: refusals ----------------------------------------------------------------------


def test_validation_errors_are_400_per_field_and_store_nothing(client, connect_tenant):
    assert _save(client, {"team_name": "Ops"}).status_code == 200
    before = _snapshot()
    response = _save(
        client,
        {
            "team_name": "",
            "results_per_page": 101,
            "default_priority": "urgent",
            "project_keys": ["OPS", "not a key"],
        },
        1,
    )
    _assert_refused(response, 400, "invalid_configuration", before)
    errors = response.json()["errors"]
    assert errors == {
        "team_name": ["This field is required."],
        "results_per_page": ["Ensure this value is less than or equal to 100."],
        "default_priority": ["Select a valid choice. urgent is not one of the available choices."],
        "project_keys": ["'not a key': Use a project key such as SUP or OPS."],
    }
    assert response["X-acpt"]  # a fresh token even on a refusal


@pytest.mark.parametrize(
    ("values", "errors"),
    [
        ({"nosuch": 1}, {"nosuch": ["Unknown field."]}),
        (
            {"team_name": ["a", "b"]},
            {"team_name": ["Enter a single value, not a list or an object."]},
        ),
        (
            {"team_name": {"a": 1}},
            {"team_name": ["Enter a single value, not a list or an object."]},
        ),
        ({"notify": "yes"}, {"notify": ["Enter true or false."]}),
        ({"channels": "email"}, {"channels": ["Enter a list of values."]}),
        ({"project_keys": {"OPS": 1}}, {"project_keys": ["Enter a list of text values."]}),
        ({"project_keys": [1, 2]}, {"project_keys": ["Enter a list of text values."]}),
        ({"results_per_page": True}, {"results_per_page": ["Enter a whole number."]}),
        (
            {"api_token": {"secret": True, "set": True, "value": "x"}},
            {
                "api_token": [
                    "Send a string to replace the secret, null to clear it, or leave it out."
                ]
            },
        ),
        (
            {"api_token": 12345},
            {
                "api_token": [
                    "Send a string to replace the secret, null to clear it, or leave it out."
                ]
            },
        ),
    ],
)
def test_wrong_json_types_and_unknown_fields_are_refused(client, connect_tenant, values, errors):
    before = _snapshot()
    response = _save(client, values)
    _assert_refused(response, 400, "invalid_configuration", before)
    assert response.json()["errors"] == errors


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"[]", "malformed_body"),
        (b'"values"', "malformed_body"),
        (b"42", "malformed_body"),
        (b"null", "malformed_body"),
        (b"{not json", "malformed_body"),
        (b"\xff\xfe", "malformed_body"),
        (b"[" * 100_000 + b"]" * 100_000, "body_too_large"),
        (b"{}", "missing_field"),
        (b'{"values": []}', "invalid_field"),
        (b'{"values": "a=b"}', "invalid_field"),
        (b'{"values": {}, "version": "0"}', "invalid_field"),
        (b'{"values": {}, "version": -1}', "invalid_field"),
        (b'{"values": {}, "version": 1.0}', "invalid_field"),
        (b'{"values": {}, "version": true}', "invalid_field"),
        (b'{"values": {}, "version": 0, "force": true}', "invalid_field"),
    ],
)
def test_malformed_bodies_are_clear_json_errors(client, connect_tenant, raw, code):
    before = _snapshot()
    response = _post(client, None, _session(), raw=raw)
    status = 413 if code == "body_too_large" else 400
    _assert_refused(response, status, code, before)
    assert response.json()["message"]


def test_body_over_the_limit_is_413_by_header_or_by_content(client, connect_tenant, settings):
    settings.CONNECT_SETTINGS = {**settings.CONNECT_SETTINGS, "MAX_CONFIGURE_BODY": 1024}
    before = _snapshot()
    big = json.dumps({"values": {"team_name": "x" * 2000}, "version": 0}).encode()
    _assert_refused(_post(client, None, _session(), raw=big), 413, "body_too_large", before)
    # A lying Content-Length does not get past the limit either.
    response = _post(client, None, _session(), raw=big, CONTENT_LENGTH="10")
    assert response.status_code in (400, 413)
    assert _snapshot() == before
    small = json.dumps({"values": {"team_name": "ok"}, "version": 0}).encode()
    assert _post(client, None, _session(), raw=small).status_code == 200


def test_wrong_content_type_is_415(client, connect_tenant):
    before = _snapshot()
    response = _post(
        client, None, _session(), raw=b"values=1", content_type="application/x-www-form-urlencoded"
    )
    _assert_refused(response, 415, "unsupported_media_type", before)


def test_stale_or_tampered_version_is_409_with_current_state(client, connect_tenant):
    assert _save(client, {"team_name": "First", "api_token": TOKEN_VALUE}, 0).status_code == 200
    before = _snapshot()
    for version in (0, 2, 99):
        response = _save(client, {"team_name": "Second"}, version)
        assert response.status_code == 409
        body = response.json()
        assert body["error"] == "conflict" and body["message"]
        assert body["current"] == {
            "values": {
                **DEFAULTS,
                "team_name": "First",
                "api_token": {"secret": True, "set": True},
            },
            "version": 1,
        }
        assert TOKEN_VALUE not in response.content.decode()
        assert _snapshot() == before
    assert _save(client, {"team_name": "Second"}, 1).status_code == 200


def _expired_session() -> str:
    tenant = Tenant.objects.get(client_key="test-client-key")
    return mint_session_token(tenant, USER, now=time.time() - 3600)


@pytest.mark.parametrize(
    ("make_token", "code"),
    [
        (lambda: None, "missing_token"),
        (lambda: "not-a-jwt", "malformed_token"),
        (_expired_session, "token_expired"),
        # A session token re-addressed to our tenant but signed by another tenant's secret.
        (
            lambda: mint_hs256(
                {"iss": "com.example.connect-settings-demo", "aud": ["test-client-key"]},
                OTHER_SECRET,
            ),
            "bad_signature",
        ),
        # A context JWT claiming our tenant, signed with another tenant's secret.
        (
            lambda: page_token("test-client-key", OTHER_SECRET, "GET", "/", qsh="context-qsh"),
            "bad_signature",
        ),
        # The page's own token: its qsh covers GET /configure, not this POST.
        (lambda: page_token("test-client-key", DEFAULT_SECRET, "GET", PAGE), "qsh_mismatch"),
        (
            lambda: page_token("no-such-tenant", DEFAULT_SECRET, "GET", "/", qsh="context-qsh"),
            "unknown_tenant",
        ),
    ],
)
def test_token_problems_are_401_and_store_nothing(client, connect_tenant, make_token, code):
    make_tenant("other-key", OTHER_SECRET)
    before = _snapshot()
    response = _post(client, {"values": {"team_name": "Evil"}, "version": 0}, make_token())
    _assert_refused(response, 401, code, before)
    assert response["WWW-Authenticate"].startswith("JWT")


def test_validation_message_never_echoes_a_secret(client, settings):
    settings.CONNECT_SETTINGS = {
        **settings.CONNECT_SETTINGS,
        "CONFIGURE_FORM": "configure_forms.RequiredSecretForm",
    }
    make_tenant()
    response = _save(client, {"name": "a", "password": "has space " + TOKEN_VALUE})
    assert response.status_code == 400
    assert response.json()["errors"] == {"password": ["Enter a valid value."]}
    assert TOKEN_VALUE not in response.content.decode()
    # A required secret: set once, kept when left out, refused when cleared.
    assert _save(client, {"name": "a"}).json()["errors"] == {
        "password": ["This field is required."]
    }
    assert _save(client, {"name": "a", "password": TOKEN_VALUE}).status_code == 200
    assert _save(client, {"name": "b"}, 1).status_code == 200
    response = _save(client, {"password": None}, 2)
    assert response.json()["errors"] == {"password": ["This field is required."]}
    assert store.get("appSettings", "test-client-key")["password"] == TOKEN_VALUE


def test_non_field_errors_and_typed_values_round_trip(client, settings):
    settings.CONNECT_SETTINGS = {
        **settings.CONNECT_SETTINGS,
        "CONFIGURE_FORM": "configure_forms.TypesForm",
        "CONFIGURE_SETTING_KEY": "typed",
    }
    make_tenant()
    response = _save(client, {"size": "l", "colours": ["red"]})
    assert response.json()["errors"] == {"__all__": ["Large comes in blue only."]}
    response = _save(client, {"size": "l", "colours": ["blue"], "amount": "12.5", "maybe": False})
    assert response.status_code == 200
    assert response.json()["values"] == {
        "when": "2024-01-31",
        "amount": "12.5",
        "colours": ["blue"],
        "size": "l",
        "maybe": False,
    }
    assert store.get("typed", "test-client-key")["amount"] == "12.5"
    # Stored JSON reads back into the form (dates and decimals from their strings).
    form = build_form(configure_form_class(), store.get("typed", "test-client-key"))
    html = form.as_div()
    assert 'value="2024-01-31"' in html and 'value="12.5"' in html


def test_no_configure_form_means_nothing_to_configure(client, connect_tenant, settings):
    settings.CONNECT_SETTINGS = {**settings.CONNECT_SETTINGS, "CONFIGURE_FORM": ""}
    html = client.get(signed_url("test-client-key", DEFAULT_SECRET, PAGE)).content.decode()
    assert "This app has no settings to configure." in html
    assert _app_settings(html) == {"values": {}, "version": 0}
    assert _save(client, {}).json()["version"] == 0
    assert _save(client, {"x": 1}).json()["errors"] == {"x": ["Unknown field."]}


# --- form conventions ------------------------------------------------------------------------


def test_secret_fields_are_discoverable_from_the_form_class(settings):
    from configure_forms import ListedSecretForm, RequiredSecretForm

    from demo_project.forms import DemoSettingsForm

    assert secret_field_names(DemoSettingsForm) == {"api_token"}
    assert secret_field_names(RequiredSecretForm) == {"password"}
    assert secret_field_names(ListedSecretForm) == {"pin"}
    # A field listed in secret_fields gets the secret widget: its value is never rendered.
    form = build_form(ListedSecretForm, {"pin": 4321})
    assert isinstance(form.fields["pin"].widget, SecretInput)
    assert "4321" not in form.as_div()


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("configure_forms.Missing", "cannot be imported"),
        ("no_such_module.Form", "cannot be imported"),
        ("configure_forms.NotAForm", "is not a django.forms.Form class"),
        ("configure_forms.WrongSecretFieldsForm", "secret_fields names fields"),
    ],
)
def test_a_wrong_configure_form_is_improperly_configured(settings, path, message):
    settings.CONNECT_SETTINGS = {**settings.CONNECT_SETTINGS, "CONFIGURE_FORM": path}
    with pytest.raises(ImproperlyConfigured, match=message):
        configure_form_class()


def test_listed_secret_on_a_number_field_is_redacted_end_to_end(client, settings):
    settings.CONNECT_SETTINGS = {
        **settings.CONNECT_SETTINGS,
        "CONFIGURE_FORM": "configure_forms.ListedSecretForm",
    }
    make_tenant()
    response = _save(client, {"pin": "4321"})
    assert response.json()["values"] == {"label": "", "pin": {"secret": True, "set": True}}
    assert store.get("appSettings", "test-client-key")["pin"] == 4321
    html = client.get(signed_url("test-client-key", DEFAULT_SECRET, PAGE)).content.decode()
    assert "4321" not in html


def test_describe_change_reads_history_for_people():
    from demo_project.forms import DemoSettingsForm

    rows = describe_change(
        DemoSettingsForm,
        {
            "default_priority": {"from": "medium", "to": "high"},
            "notify": {"from": True, "to": False},
            "channels": {"from": ["email"], "to": []},
            "api_token": {
                "from": {"secret": True, "set": True},
                "to": {"secret": True, "set": False},
            },
            "gone": {"from": 1, "to": 2},
        },
    )
    assert [(r["label"], r["from"], r["to"], r["summary"]) for r in rows] == [
        ("Default priority", "Medium", "High", ""),
        ("Notify the team when an issue is escalated", "Yes", "No", ""),
        ("Notification channels", "Email", "(none)", ""),
        ("Escalation service API token", "set", "not set", "cleared"),
        ("Gone", "1", "2", ""),
    ]


def test_save_configuration_is_usable_without_http(connect_tenant):
    result = save_configuration(connect_tenant, {"team_name": "Direct"}, account_id="acct-1")
    assert result.version == 1 and result.changed == ["team_name"]
    assert result.as_json()["mirror"] == {}
