"""The configure page's rendered-page cache (page_cache): when a template may be cached, and
that a cached page is the page a fresh render gives, with each load's own session token."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from django.template import engines
from django.test import override_settings
from django.test.signals import template_rendered

from connect_settings import page_cache, store
from connect_settings.configuration import save_configuration
from connect_settings.jwt.tokens import read_unverified
from connect_settings.lifecycle import install
from connect_settings.testing import DEFAULT_SECRET, install_payload, signed_url

PAGE = "/configure?xdm_e=https%3A%2F%2Fexample.atlassian.net&cp=&lic=none"
TOKEN = re.compile(r'<meta name="token" content="([^"]+)">')
#: The context names the configure view passes.
VIEW_NAMES = {
    "tenant", "form_html", "has_fields", "form", "rows", "app_settings", "updated_at",
    "history_html", "history", "mirror", "host_script_url", "save_url", "assets",
    page_cache.TOKEN_NAME,
}  # fmt: skip
TENANT = {"tenant": frozenset({"base_url", "display_url", "get_product_type_display"})}


def _pure(source: str, names: set[str] = VIEW_NAMES) -> bool:
    template = engines["django"].from_string(source).template  # type: ignore[attr-defined]
    return page_cache.is_pure(template, names, TENANT)


@pytest.fixture(autouse=True)
def _empty_cache() -> Iterator[None]:
    page_cache.clear_cache()
    yield
    page_cache.clear_cache()


# --- which templates may be cached ----------------------------------------------------------


def test_the_package_template_and_the_demo_override_are_cached() -> None:
    backend = engines["django"]
    demo = backend.get_template("connect_settings/configure.html").template  # type: ignore[attr-defined]
    assert "templates/connect_settings" in demo.origin.name  # the demo's override, extending
    assert page_cache.is_pure(demo, VIEW_NAMES, TENANT)


@pytest.mark.parametrize(
    "source",
    [
        "<p>{{ tenant.base_url }}</p>{{ form_html }}",
        '{{ app_settings|json_script:"app-settings" }}',
        "{{ tenant.display_url|default:tenant.base_url }}",
        "{% if mirror and not has_fields %}{{ mirror.x.status }}{% endif %}",
        "{% for key, item in mirror.items %}{{ key }}{{ forloop.counter }}{% endfor %}",
        "{% for connect in history %}{{ connect.change }}{% endfor %}",  # a loop's own name
        "{% with url=tenant.base_url %}{{ url|upper }}{% endwith %}",
        "{% load static %}<link href=\"{% static 'connect_settings/configure.css' %}\">",
        '<meta content="{{ connect_session_token }}">',
        "{% include 'connect_settings/configure_mirror.html' %}",
        "{% block a %}x{% endblock %}{% comment %}{{ request }}{% endcomment %}",
    ],
)
def test_templates_that_read_only_keyed_values_are_pure(source: str) -> None:
    assert _pure(source)


@pytest.mark.parametrize(
    "source",
    [
        "{{ request.path }}",  # the request
        "{{ user }}",  # context processors
        "{{ connect.account_id }}",
        "{{ messages }}",
        "{% csrf_token %}",
        '{% now "Y" %}',  # the time
        "{{ updated_at|date }}",  # the locale and time zone through a filter
        "{{ connect_session_token|upper }}",  # the placeholder's case would be baked in
        "{% if connect_session_token %}x{% endif %}",
        "{{ tenant.shared_secret }}",  # not a keyed field
        "{{ tenant.configurations.count }}",  # a query
        "{% include template_name %}",  # chosen at render time
        "{% for connect in history %}{% endfor %}{{ connect.claims }}",  # outside the loop
        "{% with x=request %}{{ x }}{% endwith %}",
        "{% if request.GET.a %}x{% endif %}",
        "{% load i18n %}{% translate 'Save' %}",  # not on the allowlist: rendered each time
        "{% url 'connect_settings:configure' %}",
        "{% include 'connect_settings/no-such-template.html' %}",
    ],
)
def test_templates_that_read_anything_else_are_not(source: str) -> None:
    assert not _pure(source)


def test_an_impure_parent_makes_its_child_impure(settings: Any) -> None:
    templates = {
        "parent.html": "<p>{{ request.path }}</p>{% block body %}{% endblock %}",
        "child.html": "{% extends 'parent.html' %}{% block body %}{{ form_html }}{% endblock %}",
    }
    settings.TEMPLATES = [
        {
            "BACKEND": "django.template.backends.django.DjangoTemplates",
            "OPTIONS": {"loaders": [("django.template.loaders.locmem.Loader", templates)]},
        }
    ]
    child = engines["django"].get_template("child.html").template  # type: ignore[attr-defined]
    assert not page_cache.is_pure(child, VIEW_NAMES, TENANT)


# --- a cached page is the page, with each load's own token ----------------------------------


def _load(client: Any, sub: str) -> str:
    response = client.get(signed_url("test-client-key", DEFAULT_SECRET, PAGE, sub=sub))
    assert response.status_code == 200, response.content
    return response.content.decode()


@pytest.fixture
def rendered() -> Iterator[list[str]]:
    """Names of the templates rendered (Django's test instrumentation sends the signal)."""
    names: list[str] = []

    def record(sender: Any, template: Any, **kwargs: Any) -> None:
        names.append(template.name)

    template_rendered.connect(record)
    yield names
    template_rendered.disconnect(record)


@pytest.mark.django_db
def test_a_second_load_renders_nothing_and_carries_its_own_token(
    client: Any, connect_tenant: Any, rendered: list[str]
) -> None:
    first = _load(client, "557058:alice")
    assert "connect_settings/configure.html" in rendered
    rendered.clear()
    second = _load(client, "557058:bob")
    assert rendered == []  # from the cache

    alice, bob = TOKEN.search(first), TOKEN.search(second)
    assert alice and bob
    assert read_unverified(alice.group(1))[1]["sub"] == "557058:alice"
    assert read_unverified(bob.group(1))[1]["sub"] == "557058:bob"
    assert "alice" not in second
    assert first.replace(alice.group(1), "T") == second.replace(bob.group(1), "T")

    # And it is the page a fresh render gives.
    with override_settings(DEBUG=True):
        fresh = _load(client, "557058:bob")
    token = TOKEN.search(fresh)
    assert token
    assert fresh.replace(token.group(1), "T") == second.replace(bob.group(1), "T")


@pytest.mark.django_db
def test_every_input_of_the_page_changes_it(client: Any, connect_tenant: Any) -> None:
    html = _load(client, "557058:alice")
    assert 'value="Support"' in html and "version 1" not in html

    save_configuration(connect_tenant, {"team_name": "Night shift"}, version=0)
    html = _load(client, "557058:alice")
    assert 'value="Night shift"' in html and "Night shift" in html.split('id="cs-history')[-1]

    store.set("appSettings", {"team_name": "Behind its back"}, connect_tenant)
    assert 'value="Behind its back"' in _load(client, "557058:alice")

    # A reinstall that moves the site shows its new address (and frames only there).
    install(install_payload(displayUrl="https://renamed.atlassian.net"))
    response = client.get(signed_url("test-client-key", DEFAULT_SECRET, PAGE, sub="a"))
    assert "renamed.atlassian.net" in response.content.decode()
    assert "https://renamed.atlassian.net" in response["Content-Security-Policy"]

    # The page's save URL is the path it was loaded from.
    assert 'action="/configure"' in response.content.decode()


def _override_footer(settings: Any, footer: str) -> None:
    """An override of ``configure.html`` that extends the package's and replaces its footer."""
    override = (
        "{% extends 'connect_settings/configure.html' %}{% block footer %}"
        + footer
        + "{% endblock %}"
    )
    engine = settings.TEMPLATES[0]
    settings.TEMPLATES = [
        {
            **engine,
            "APP_DIRS": False,
            "OPTIONS": {
                **engine["OPTIONS"],
                "loaders": [
                    (
                        "django.template.loaders.locmem.Loader",
                        {"connect_settings/configure.html": override},
                    ),
                    "django.template.loaders.app_directories.Loader",
                ],
            },
        }
    ]


@pytest.mark.django_db
def test_an_override_that_reads_the_request_context_is_rendered_every_time(
    client: Any, connect_tenant: Any, rendered: list[str], settings: Any
) -> None:
    _override_footer(settings, "<p id='who'>{{ connect.account_id }}</p>")
    assert "<p id='who'>557058:alice</p>" in _load(client, "557058:alice")
    rendered.clear()
    assert "<p id='who'>557058:bob</p>" in _load(client, "557058:bob")
    assert "connect_settings/configure.html" in rendered


@pytest.mark.django_db
def test_nothing_is_cached_under_debug(
    client: Any, connect_tenant: Any, rendered: list[str], settings: Any
) -> None:
    settings.DEBUG = True
    _load(client, "557058:alice")
    rendered.clear()
    _load(client, "557058:alice")
    assert "connect_settings/configure.html" in rendered


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("footer", "shown"),
    [
        (  # the token twice
            "<p>Équipe → {{ connect_session_token }} · {{ connect_session_token }}</p>",
            "<p>Équipe → T · T</p>",
        ),
        ("<p>No token here · ünïcödé</p>", "<p>No token here · ünïcödé</p>"),
    ],
)
def test_a_cached_page_is_the_fresh_render_byte_for_byte(
    client: Any,
    connect_tenant: Any,
    rendered: list[str],
    settings: Any,
    footer: str,
    shown: str,
) -> None:
    # The cache keeps the page encoded, split where the token goes.
    _override_footer(settings, footer)
    _load(client, "557058:alice")
    rendered.clear()
    cached = _load(client, "557058:bob")
    assert rendered == []  # from the cache
    with override_settings(DEBUG=True):
        fresh = _load(client, "557058:bob")
    tokens = {m.group(1) for m in TOKEN.finditer(cached)} | {
        m.group(1) for m in TOKEN.finditer(fresh)
    }
    for token in tokens:
        cached, fresh = cached.replace(token, "T"), fresh.replace(token, "T")
    assert cached == fresh
    assert shown in cached
