"""connect_settings.store: ACE's verbs over AddonSetting, sync and async."""

from __future__ import annotations

import math
from typing import Any

import pytest
from asgiref.sync import async_to_sync

from connect_settings import signals, store
from connect_settings.exceptions import SettingValueError
from connect_settings.models import AddonSetting
from connect_settings.testing import make_tenant

pytestmark = pytest.mark.django_db


@pytest.fixture
def changes(django_capture_on_commit_callbacks: Any) -> Any:
    seen: list[dict[str, Any]] = []

    def receiver(**kwargs: Any) -> None:
        seen.append(kwargs)

    signals.setting_changed.connect(receiver)
    yield seen
    signals.setting_changed.disconnect(receiver)


def test_set_get_all_delete(connect_tenant, changes, django_capture_on_commit_callbacks):
    assert store.get("missing", "test-client-key") is None
    assert store.get("missing", "test-client-key", default={"d": 1}) == {"d": 1}
    with django_capture_on_commit_callbacks(execute=True):
        store.set("config", {"a": [1, 2, {"b": None}], "s": "ü"}, "test-client-key")
        store.set("count", 3, "test-client-key")
        store.set("count", 4, "test-client-key")
        store.set("count", 4, "test-client-key")  # unchanged: no write, no signal
    assert store.get("config", "test-client-key") == {"a": [1, 2, {"b": None}], "s": "ü"}
    assert store.all("test-client-key") == {
        "config": {"a": [1, 2, {"b": None}], "s": "ü"},
        "count": 4,
    }
    with django_capture_on_commit_callbacks(execute=True):
        assert store.delete("count", "test-client-key") is True
    assert store.delete("count", "test-client-key") is False
    assert store.get("count", "test-client-key") is None
    assert [(c["key"], c["old_value"], c["new_value"], c["deleted"]) for c in changes] == [
        ("config", None, {"a": [1, 2, {"b": None}], "s": "ü"}, False),
        ("count", None, 3, False),
        ("count", 3, 4, False),
        ("count", 4, None, True),
    ]
    assert all(c["tenant"].client_key == "test-client-key" for c in changes)


def test_settings_are_per_tenant(connect_tenant):
    make_tenant("other", "other-secret-0123456789-0123456789-0123456789")
    store.set("k", "mine", "test-client-key")
    store.set("k", "theirs", "other")
    assert store.get("k", "test-client-key") == "mine"
    assert store.get("k", "other") == "theirs"
    assert store.all("other") == {"k": "theirs"}


@pytest.mark.parametrize(
    "value",
    [object(), {1, 2}, b"bytes", math.nan, math.inf, {"x": object()}],
    ids=["object", "set", "bytes", "nan", "inf", "nested-object"],
)
def test_non_json_values_raise_and_store_nothing(connect_tenant, value):
    store.set("k", "before", "test-client-key")
    with pytest.raises(SettingValueError, match="not JSON-serialisable"):
        store.set("k", value, "test-client-key")
    assert store.get("k", "test-client-key") == "before"
    assert AddonSetting.objects.count() == 1


@pytest.mark.parametrize("key", ["", "k" * 256, None, 5])
def test_invalid_keys_raise(connect_tenant, key):
    with pytest.raises(SettingValueError):
        store.set(key, 1, "test-client-key")
    assert not AddonSetting.objects.exists()


def test_unknown_tenant(db):
    assert store.get("k", "nobody") is None
    assert store.all("nobody") == {}
    assert store.delete("k", "nobody") is False
    with pytest.raises(store.UnknownTenant):
        store.set("k", 1, "nobody")
    with pytest.raises(LookupError):
        store.set("k", 1, "nobody")


def test_key_of_255_characters_fits(connect_tenant):
    store.set("k" * 255, True, "test-client-key")
    assert store.get("k" * 255, "test-client-key") is True


@pytest.mark.django_db(transaction=True)
def test_async_twins():
    make_tenant()

    async def scenario() -> tuple[Any, ...]:
        await store.aset("k", [1, "two"], "test-client-key")
        got = await store.aget("k", "test-client-key")
        everything = await store.aall("test-client-key")
        deleted = await store.adelete("k", "test-client-key")
        return got, everything, deleted, await store.aget("k", "test-client-key", "gone")

    assert async_to_sync(scenario)() == ([1, "two"], {"k": [1, "two"]}, True, "gone")


def test_json_types_are_told_apart(connect_tenant, django_capture_on_commit_callbacks, changes):
    # 1 == True and 1 == 1.0 in Python, but they are different JSON values.
    with django_capture_on_commit_callbacks(execute=True):
        store.set("flag", 1, "test-client-key")
        store.set("flag", True, "test-client-key")
        store.set("flag", 1.0, "test-client-key")
    assert store.get("flag", "test-client-key") == 1.0
    assert type(store.get("flag", "test-client-key")) is float
    assert [c["new_value"] for c in changes] == [1, True, 1.0]


def test_a_tenant_instance_saves_the_lookup(connect_tenant):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    store.set("k", {"v": 1}, connect_tenant)
    with CaptureQueriesContext(connection) as ctx:
        assert store.all(connect_tenant) == {"k": {"v": 1}}
        assert store.get("k", connect_tenant) == {"v": 1}
    assert len(ctx.captured_queries) == 2
    # Neither query joins the tenant table: ordering is by tenant_id.
    assert not any("connect_settings_tenant" in q["sql"] for q in ctx.captured_queries)


VALUES = [None, 0, -7, 2**53, 1.5, True, False, "", 'text ☃ with quotes " and \\']
VALUES += [[], {}, [1, [2, {}]], {"nested": {"a": [None, "b"]}, "unicode": "ü"}, "x" * 10_000]


def test_reads_decode_every_json_value_as_the_orm_does(connect_tenant):
    # get/all execute SQL the ORM compiled once; their values must be the ORM's own.
    for i, value in enumerate(VALUES):
        store.set(f"k{i:02d}", value, connect_tenant)
    orm = dict(AddonSetting.objects.filter(tenant_id=connect_tenant.pk).values_list("key", "value"))
    assert store.all(connect_tenant) == orm
    assert list(store.all(connect_tenant)) == sorted(orm)  # ordered by key
    for key, value in orm.items():
        got = store.get(key, connect_tenant)
        assert got == value and type(got) is type(value)
    assert store.get("absent", connect_tenant, "dflt") == "dflt"


def test_reads_are_scoped_to_the_tenant(connect_tenant):
    other = make_tenant("another-client-key")
    store.set("shared", "mine", connect_tenant)
    store.set("shared", "theirs", other)
    store.set("only-theirs", 1, other)
    assert store.all(connect_tenant) == {"shared": "mine"}
    assert store.get("shared", other) == "theirs"
    assert store.get("only-theirs", connect_tenant) is None


def test_reads_by_client_key_are_one_query_joining_the_tenant(connect_tenant):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    store.set("k", {"v": 1}, connect_tenant)
    store.set("j", [2], connect_tenant)
    make_tenant("another-client-key")
    store.set("k", "theirs", "another-client-key")
    with CaptureQueriesContext(connection) as ctx:
        assert store.get("k", "test-client-key") == {"v": 1}
        assert store.get("absent", "test-client-key", "dflt") == "dflt"
        everything = store.all("test-client-key")
    assert everything == {"j": [2], "k": {"v": 1}} and list(everything) == ["j", "k"]
    # No tenant lookup before each read: the read itself finds the tenant by its key.
    assert len(ctx.captured_queries) == 3
    assert all("connect_settings_tenant" in q["sql"] for q in ctx.captured_queries)


@pytest.mark.parametrize("client_key", [None, "", "x" * 256, 7, "nobody"])
def test_reads_by_a_key_naming_no_tenant_give_the_default(connect_tenant, client_key):
    store.set("k", 1, connect_tenant)
    assert store.get("k", client_key, "dflt") == "dflt"
    assert store.all(client_key) == {}


def test_an_uninstalled_tenants_settings_stay_readable(connect_tenant):
    # As through the tenant lookup: uninstalling keeps the data until connect_purge.
    store.set("k", "kept", connect_tenant)
    connect_tenant.installed = False
    connect_tenant.save()
    assert store.get("k", "test-client-key") == "kept"
    assert store.all("test-client-key") == {"k": "kept"}
