"""The configure page's read path and its cache of the rendered form (configure_page)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from django import forms
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone, translation

from connect_settings import configure_page, store
from connect_settings.configuration import configure_form_class, save_configuration
from connect_settings.configure_page import form_part, read_state
from connect_settings.lru import LRU
from connect_settings.models import Configuration, ConfigurationChange, Tenant
from connect_settings.testing import DEFAULT_SECRET, make_tenant, signed_url

pytestmark = pytest.mark.django_db

PAGE = "/configure?xdm_e=https%3A%2F%2Fexample.atlassian.net&cp=&lic=none"
TOKEN_VALUE = "tok-SECRET-1a2b3c4d"


def _page(client: Any) -> str:
    response = client.get(signed_url("test-client-key", DEFAULT_SECRET, PAGE))
    assert response.status_code == 200, response.content
    return response.content.decode()


def _app_settings(html: str) -> dict[str, Any]:
    match = re.search(r'<script id="app-settings" type="application/json">(.*?)</script>', html)
    assert match
    return json.loads(match.group(1))


def _record(monkeypatch: pytest.MonkeyPatch, name: str, describe: Any) -> list[Any]:
    """Every call of ``configure_page.<name>`` (an uncached rendering), as ``describe`` of
    its second argument."""
    calls: list[Any] = []
    real = getattr(configure_page, name)

    def recording(form_class: Any, given: Any, *rest: Any) -> Any:
        calls.append(describe(given))
        return real(form_class, given, *rest)

    monkeypatch.setattr(configure_page, name, recording)
    return calls


@pytest.fixture
def renders(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Every uncached rendering of the form part, by the stored values it was given."""
    return _record(monkeypatch, "render_form_part", dict)


# --- the cache can never serve a stale form -------------------------------------------------


def test_a_store_set_that_bypasses_the_save_shows_on_the_next_page(client, connect_tenant, renders):
    html = _page(client)
    assert 'value="Support"' in html and "No value is stored." in html
    assert _page(client) and len(renders) == 1  # the second page used the cache

    # Written behind the versioned save's back: no version, no history, same cache.
    store.set("appSettings", {"team_name": "Night shift", "api_token": TOKEN_VALUE}, connect_tenant)
    html = _page(client)
    assert len(renders) == 2
    assert 'value="Night shift"' in html and 'value="Support"' not in html
    assert "A value is set." in html and TOKEN_VALUE not in html
    values = _app_settings(html)["values"]
    assert values["team_name"] == "Night shift"
    assert values["api_token"] == {"secret": True, "set": True}

    # And back: the same values as before give the same page as before.
    store.set("appSettings", {}, connect_tenant)
    html = _page(client)
    assert 'value="Support"' in html and "No value is stored." in html


def test_values_that_differ_only_in_json_type_are_different_pages(client, connect_tenant, renders):
    store.set("appSettings", {"notify": True}, connect_tenant)
    assert _app_settings(_page(client))["values"]["notify"] is True
    store.set("appSettings", {"notify": 1}, connect_tenant)
    assert _app_settings(_page(client))["values"]["notify"] == 1
    assert len(renders) == 2


def test_per_request_parts_are_fresh_while_the_form_comes_from_the_cache(
    client, connect_tenant, renders
):
    html = _page(client)
    assert "No changes yet." in html and _app_settings(html)["version"] == 0
    # History and version written without touching the stored values: same form part.
    Configuration.objects.create(tenant=connect_tenant, version=7)
    ConfigurationChange.objects.create(
        tenant=connect_tenant,
        version=7,
        account_id="557058:someone",
        source=ConfigurationChange.Source.PAGE,
        changes={"team_name": {"from": "Support", "to": "Support "}},
    )
    html = _page(client)
    assert len(renders) == 1
    assert _app_settings(html)["version"] == 7
    assert "version 7" in html and "557058:someone" in html and "No changes yet." not in html


@pytest.fixture
def history_renders(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Every uncached rendering of the history, by the number of changes it showed."""
    return _record(monkeypatch, "render_history_part", len)


def test_the_history_is_cached_but_never_stale(client, connect_tenant, history_renders):
    save_configuration(connect_tenant, {"team_name": "Ops"}, account_id="557058:first")
    html = _page(client)
    assert '<span class="cs-history-to">Ops</span>' in html and "557058:first" in html
    _page(client)
    assert history_renders == [1]
    # A row changed behind the app's back (no new version) is a different key.
    ConfigurationChange.objects.update(
        account_id="557058:edited", changes={"team_name": {"from": "Support", "to": "Edited"}}
    )
    html = _page(client)
    assert '<span class="cs-history-to">Edited</span>' in html and "557058:edited" in html
    assert "557058:first" not in html and history_renders == [1, 1]
    save_configuration(connect_tenant, {"team_name": "Platform"})
    html = _page(client)
    assert "version 2" in html and '<span class="cs-history-to">Platform</span>' in html
    ConfigurationChange.objects.all().delete()
    assert "No changes yet." in _page(client)
    assert history_renders == [1, 1, 2, 0]


@pytest.fixture
def entry_renders(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Every uncached rendering of one history entry, by its version."""
    calls: list[int] = []
    real = configure_page.HistoryEntry._render

    def recording(entry: configure_page.HistoryEntry) -> Any:
        calls.append(entry.change.version)
        return real(entry)

    monkeypatch.setattr(configure_page.HistoryEntry, "_render", recording)
    return calls


def test_after_a_save_only_the_new_history_entry_is_rendered(
    client, connect_tenant, history_renders, entry_renders
):
    for name in ("Ops", "Platform"):
        save_configuration(connect_tenant, {"team_name": name})
    _page(client)
    assert entry_renders == [2, 1]  # newest first
    save_configuration(connect_tenant, {"team_name": "Billing"})
    html = _page(client)
    assert history_renders == [2, 3] and entry_renders == [2, 1, 3]
    entries = re.findall(r'<span class="cs-history-to">(\w+)</span>', html)
    assert entries == ["Billing", "Platform", "Ops"]
    # The same rows in another time zone are other entries (their times read differently).
    with timezone.override("Asia/Kolkata"):
        html = _page(client)
    assert entry_renders == [2, 1, 3, 3, 2, 1] and '+05:30"' in html


def test_an_entry_edited_in_place_is_rendered_again(client, connect_tenant, entry_renders):
    for name in ("Ops", "Platform"):
        save_configuration(connect_tenant, {"team_name": name})
    _page(client)
    ConfigurationChange.objects.filter(version=1).update(account_id="557058:erased")
    html = _page(client)
    assert entry_renders == [2, 1, 1] and "557058:erased" in html


def test_debug_renders_every_history_entry(client, connect_tenant, entry_renders, settings):
    settings.DEBUG = True
    save_configuration(connect_tenant, {"team_name": "Ops"})
    _page(client)
    _page(client)
    assert entry_renders == [1, 1]


def test_tenants_with_the_same_values_share_the_form_but_not_the_page(client, renders):
    make_tenant()
    make_tenant("other-key", "other-secret-0123456789-0123456789-0123", display_url="")
    first = client.get(signed_url("test-client-key", DEFAULT_SECRET, PAGE))
    other_url = "/configure?xdm_e=https%3A%2F%2Fother.example&lic=none"
    second = client.get(
        signed_url("other-key", "other-secret-0123456789-0123456789-0123", other_url)
    )
    assert len(renders) == 1
    assert first["X-acpt"] != second["X-acpt"]
    assert f'content="{first["X-acpt"]}"' in first.content.decode()
    assert f'content="{second["X-acpt"]}"' in second.content.decode()


def test_debug_renders_every_page(client, connect_tenant, renders, settings):
    settings.DEBUG = True
    _page(client)
    _page(client)
    assert len(renders) == 2


def test_the_language_is_part_of_the_key(connect_tenant, renders):
    form_class = forms.Form
    with translation.override("en"):
        form_part(form_class, {})
        form_part(form_class, {})
    with translation.override("de"):
        form_part(form_class, {})
    assert len(renders) == 2


class _LiveChoices(forms.Form):
    cache_rendering = False
    colour = forms.CharField()


def test_a_form_may_opt_out_of_the_cache(renders):
    form_part(_LiveChoices, {})
    form_part(_LiveChoices, {})
    assert len(renders) == 2


def test_the_cache_is_bounded(monkeypatch, renders):
    monkeypatch.setattr(configure_page, "_cache", LRU(2))
    for n in (1, 2, 3):
        form_part(forms.Form, {"n": n})
    assert len(configure_page._cache) == 2
    form_part(forms.Form, {"n": 3})  # kept
    form_part(forms.Form, {"n": 1})  # forgotten: rendered again
    assert [c["n"] for c in renders] == [1, 2, 3, 1]


def test_overriding_templates_still_get_form_and_rows(client, connect_tenant, tmp_path, settings):
    override = tmp_path / "connect_settings" / "configure.html"
    override.parent.mkdir()
    override.write_text(
        "{% for row in rows %}<i data-row='{{ row.field.name }}'>{{ row.widget }}</i>{% endfor %}"
        "{{ form.team_name.value }}"
    )
    settings.TEMPLATES = [{**settings.TEMPLATES[0], "DIRS": [tmp_path]}]
    html = _page(client)
    assert "<i data-row='team_name'><input" in html and html.endswith("Support")


def test_asset_links_follow_the_static_files_settings(client, connect_tenant, settings):
    html = _page(client)
    assert '<link rel="stylesheet" href="/static/connect_settings/configure.css">' in html
    assert '<script src="/static/connect_settings/configure.js" defer></script>' in html
    settings.STATIC_URL = "https://cdn.example/assets/"
    html = _page(client)
    assert 'href="https://cdn.example/assets/connect_settings/configure.css"' in html
    assert 'src="https://cdn.example/assets/connect_settings/configure.js"' in html


def test_nothing_mirrored_leaves_the_mirror_section_out(client, connect_tenant):
    assert "cs-mirror" not in _page(client)


# --- one query for the page ------------------------------------------------------------------


def _page_queries(client: Any) -> list[str]:
    url = signed_url("test-client-key", DEFAULT_SECRET, PAGE)
    client.get(url)  # warms the tenant cache
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200
    return [q["sql"] for q in queries.captured_queries]


def test_a_page_without_history_is_one_query(client, connect_tenant):
    assert len(_page_queries(client)) == 1


def test_a_page_with_history_is_one_query_too(client, connect_tenant, settings):
    save_configuration(connect_tenant, {"team_name": "Ops"})
    sql = _page_queries(client)
    assert len(sql) == 1 and "connect_settings_configurationchange" in sql[0]
    settings.CONNECT_SETTINGS = {**settings.CONNECT_SETTINGS, "CONFIGURE_HISTORY_ON_PAGE": 0}
    assert len(_page_queries(client)) == 1


def _history_alone(tenant: Tenant, limit: int) -> list[tuple[Any, ...]]:
    """The newest changes as the ORM's own history query returns them."""
    sql, tenant_at, _ = configure_page._compiled_history(connection.alias, limit)
    params: list[Any] = []
    params.insert(tenant_at, tenant.pk)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def test_the_history_read_with_the_state_is_the_history_query_s(connect_tenant, settings):
    settings.CONNECT_SETTINGS = {**settings.CONNECT_SETTINGS, "CONFIGURE_HISTORY_ON_PAGE": 3}
    for name in ("Ops", "Platform", "Billing", "Legal", "Sales"):
        save_configuration(connect_tenant, {"team_name": name}, account_id="557058:x")
    # Equal timestamps: the ordering's second column (version) decides, as in the ORM's.
    ConfigurationChange.objects.update(changed_at=Configuration.objects.get().updated_at)
    state = read_state(connect_tenant)
    changes = configure_page.recent_changes(connect_tenant, state)
    with CaptureQueriesContext(connection) as queries:
        rows = list(changes.rows)
    assert rows == _history_alone(connect_tenant, 3)
    assert [row[2] for row in rows] == [5, 4, 3]  # (id, tenant, version, ...)
    if connection.vendor == "postgresql":
        # Only the digest came with the state; the rows, with the same digest, on demand.
        assert state.history is None and len(queries.captured_queries) == 1
        assert changes.key == state.history_digest and len(state.history_digest) == 32
    else:
        assert state.history == tuple(rows) and not queries.captured_queries
    assert state.stored["team_name"] == "Sales" and state.version == 5


def test_no_history_reads_as_none_and_a_zero_limit_reads_whether_there_is_any(
    connect_tenant, settings
):
    save_configuration(make_tenant("other-key"), {"team_name": "Other"})
    state = read_state(connect_tenant)
    assert not state.has_history and state.history_digest is None
    assert configure_page.recent_changes(connect_tenant, state).rows == ()
    settings.CONNECT_SETTINGS = {**settings.CONNECT_SETTINGS, "CONFIGURE_HISTORY_ON_PAGE": 0}
    save_configuration(connect_tenant, {"team_name": "Ops"})
    state = read_state(connect_tenant)
    assert state.has_history and state.history is None and state.history_digest is None


def _postgres_only() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: run with DATABASE_URL=postgres://... (CI does)")


def test_the_history_digest_follows_every_change_of_the_rows(connect_tenant):
    """On PostgreSQL the digest covers each change's row version: every write, even one
    inside the transaction that wrote the row before, gives another."""
    _postgres_only()
    save_configuration(connect_tenant, {"team_name": "Ops"}, account_id="557058:x")
    first = read_state(connect_tenant).history_digest
    assert first is not None and read_state(connect_tenant).history_digest == first
    save_configuration(connect_tenant, {"team_name": "Platform"})
    second = read_state(connect_tenant).history_digest
    assert second not in (None, first)
    # In place, as an erasure would: same ids and versions, another digest.
    ConfigurationChange.objects.filter(version=1).update(account_id="")
    third = read_state(connect_tenant).history_digest
    assert third not in (None, first, second)
    # The JSON column alone counts too.
    ConfigurationChange.objects.filter(version=1).update(changes={"team_name": {"to": "Ops!"}})
    fourth = read_state(connect_tenant).history_digest
    assert fourth not in (None, first, second, third)
    # Rewriting the same values is another row version: a cache miss, never a stale hit.
    ConfigurationChange.objects.filter(version=1).update(account_id="")
    fifth = read_state(connect_tenant).history_digest
    assert fifth not in (None, first, second, third, fourth)
    ConfigurationChange.objects.filter(version=2).delete()
    assert read_state(connect_tenant).history_digest not in (
        None,
        first,
        second,
        third,
        fourth,
        fifth,
    )


def test_rows_read_after_the_state_key_the_history_by_their_own_digest(client, connect_tenant):
    _postgres_only()
    save_configuration(connect_tenant, {"team_name": "Ops"})
    state = read_state(connect_tenant)
    save_configuration(connect_tenant, {"team_name": "Platform"})  # between the two reads
    changes = configure_page.recent_changes(connect_tenant, state)
    html = configure_page.history_part(configure_form_class(), changes)
    assert '<span class="cs-history-to">Platform</span>' in html
    # Cached under the digest of what it shows, which the next page load reads.
    assert changes.key != state.history_digest
    assert changes.key == read_state(connect_tenant).history_digest
    assert "Platform" in _page(client)


def _bare(state: configure_page.PageState) -> tuple[Any, ...]:
    return state.stored, state.version, state.updated_at, state.has_history


def test_read_state_matches_what_is_stored(connect_tenant):
    assert _bare(read_state(connect_tenant)) == ({}, 0, None, False)
    result = save_configuration(connect_tenant, {"team_name": "Ops", "notify": False})
    state = read_state(connect_tenant)
    assert state.stored == store.get("appSettings", connect_tenant)
    assert state.stored["team_name"] == "Ops" and state.stored["notify"] is False
    assert state.version == 1 and state.has_history
    assert state.updated_at == result.updated_at == Configuration.objects.get().updated_at
    assert state.updated_at.tzinfo is not None
    # Anything but an object counts as nothing stored, as configuration.stored_values says.
    store.set("appSettings", ["not", "an", "object"], connect_tenant)
    assert read_state(connect_tenant).stored == {}


def test_read_state_is_per_tenant(connect_tenant):
    other = make_tenant("other-key", "other-secret-0123456789-0123456789-0123")
    save_configuration(other, {"team_name": "Other"})
    assert _bare(read_state(connect_tenant)) == ({}, 0, None, False)
    assert read_state(Tenant.objects.get(client_key="other-key")).version == 1
