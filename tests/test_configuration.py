"""The settings object, system checks (through call_command("check")) and the descriptor."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from connect_settings.conf import ATLASSIAN_KEY_SERVERS, DEFAULTS, connect_settings

PROD = {
    "APP_KEY": "com.example.app",
    "BASE_URL": "https://app.example.com",
    "SECRET_KEYS": ["k1-0123456789abcdef0123456789abcdef"],
}


def _check_ids(settings, debug: bool = False, **overrides) -> set[str]:
    settings.DEBUG = debug
    settings.CONNECT_SETTINGS = {**PROD, **overrides}
    out = StringIO()
    try:
        call_command("check", "--tag", "connect_settings", stdout=out, stderr=out)
    except SystemCheckError as err:
        out.write(str(err))
    text = out.getvalue()
    return {word.strip("():,") for word in text.split() if word.startswith("(connect_settings.")}


def test_defaults_documented_and_applied(settings):
    settings.CONNECT_SETTINGS = {"APP_KEY": "x", "BASE_URL": "https://a.example.com/"}
    assert connect_settings.BASE_URL == "https://a.example.com"
    assert connect_settings.JWT_LEEWAY == 30
    assert connect_settings.SESSION_TOKEN_TTL == 900
    assert list(connect_settings.INSTALL_KEY_SERVERS) == list(ATLASSIAN_KEY_SERVERS)
    assert "*.atlassian.net" in connect_settings.HOST_ALLOWLIST
    assert set(DEFAULTS) >= {
        "APP_KEY",
        "BASE_URL",
        "ALLOWED_BASE_URLS",
        "DESCRIPTOR",
        "INSTALL_KEY_SERVERS",
        "HOST_ALLOWLIST",
        "JWT_LEEWAY",
        "SESSION_TOKEN_TTL",
        "SECRET_KEYS",
    }


def test_unknown_keys_rejected(settings):
    settings.CONNECT_SETTINGS = {"APP_KEY": "x", "JWT_LEWAY": 5}
    with pytest.raises(ImproperlyConfigured, match="JWT_LEWAY"):
        connect_settings.APP_KEY  # noqa: B018


def test_reloaded_on_setting_changed(settings):
    settings.CONNECT_SETTINGS = {"APP_KEY": "first"}
    assert connect_settings.APP_KEY == "first"
    settings.CONNECT_SETTINGS = {"APP_KEY": "second"}
    assert connect_settings.APP_KEY == "second"


def test_read_values_do_not_outlive_a_reload(settings):
    # Values are kept as plain attributes once read: a reload must drop them all, so that a
    # setting no longer overridden reads its default again.
    settings.CONNECT_SETTINGS = {"APP_KEY": "x", "JWT_LEEWAY": 5}
    assert connect_settings.JWT_LEEWAY == 5
    assert connect_settings.JWT_LEEWAY == 5  # the second read is the plain attribute
    settings.CONNECT_SETTINGS = {"APP_KEY": "x"}
    assert connect_settings.JWT_LEEWAY == 30
    with pytest.raises(AttributeError, match="NO_SUCH_SETTING"):
        connect_settings.NO_SUCH_SETTING  # noqa: B018


def test_production_config_is_clean(settings):
    assert _check_ids(settings) == set()


@pytest.mark.parametrize(
    ("overrides", "debug", "expected"),
    [
        ({"APP_KEY": ""}, False, "connect_settings.E001"),
        ({"BASE_URL": ""}, False, "connect_settings.E002"),
        ({"BASE_URL": "http://app.example.com"}, False, "connect_settings.E003"),
        ({"INSTALL_KEY_SERVERS": []}, False, "connect_settings.E004"),
        ({"INSTALL_KEY_SERVERS": ["http://keys.example.com"]}, False, "connect_settings.E005"),
        ({"HOST_ALLOWLIST": ["*"]}, False, "connect_settings.E006"),
        ({"HOST_ALLOWLIST": ["*.com"]}, False, "connect_settings.E006"),
        ({"SECRET_KEYS": ["ok-key-0123456789", " "]}, False, "connect_settings.E007"),
        ({"SECRET_KEYS": []}, False, "connect_settings.W001"),
        ({"HOST_ALLOWLIST": ["*.atlassian.net", "127.0.0.1"]}, False, "connect_settings.W002"),
        ({"NOT_A_SETTING": 1}, False, "connect_settings.E000"),
        ({"CONFIGURE_FORM": "no.such.module.Form"}, False, "connect_settings.E008"),
        ({"CONFIGURE_FORM": "demo_project.forms.NoSuchForm"}, False, "connect_settings.E008"),
    ],
)
def test_checks_catch_misconfiguration(settings, overrides, debug, expected):
    assert expected in _check_ids(settings, debug, **overrides)


def test_debug_allows_http_and_loopback(settings):
    ids = _check_ids(
        settings,
        debug=True,
        BASE_URL="http://127.0.0.1:8000",
        INSTALL_KEY_SERVERS=["http://127.0.0.1:9000/keys"],
        HOST_ALLOWLIST=["*.atlassian.net", "127.0.0.1"],
    )
    assert ids == set()


def test_errors_fail_the_check_command(settings):
    settings.DEBUG = False
    settings.CONNECT_SETTINGS = {**PROD, "APP_KEY": ""}
    with pytest.raises(SystemCheckError, match="E001"):
        call_command("check", stdout=StringIO(), stderr=StringIO())


def test_descriptor(client, settings):
    settings.CONNECT_SETTINGS = {
        **PROD,
        "DESCRIPTOR": {"name": "Demo", "modules": {"generalPages": [{"key": "g", "url": "/g"}]}},
    }
    response = client.get("/atlassian-connect.json")
    assert response.status_code == 200
    data = response.json()
    assert data["key"] == "com.example.app"
    assert data["baseUrl"] == "https://app.example.com"
    assert data["name"] == "Demo"
    assert data["authentication"] == {"type": "jwt"}
    assert data["lifecycle"] == {
        "installed": "/installed",
        "uninstalled": "/uninstalled",
        "enabled": "/enabled",
        "disabled": "/disabled",
    }
    assert data["apiMigrations"] == {"signed-install": True, "context-qsh": True, "gdpr": True}
    assert data["modules"]["configurePage"]["url"] == "/configure"
    assert data["modules"]["generalPages"] == [{"key": "g", "url": "/g"}]
    assert client.post("/atlassian-connect.json").status_code == 405
