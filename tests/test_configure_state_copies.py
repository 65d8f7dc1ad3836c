"""Each process's copy of the configure page's state (``configure_page.read_state``).

With Redis as the tenant cache, a process keeps what the state query read, and every write
of the rows it reads drops the copy once it commits. Cross-process: ``test_tenant_cache.py``.
These tests commit for real (``transaction=True``): inside a transaction nothing is kept.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import pytest
from django.core.cache import caches
from django.db import connection, connections, transaction
from django.test.utils import CaptureQueriesContext

from connect_settings import configuration, store, tenants
from connect_settings.conf import connect_settings as conf
from connect_settings.configuration import save_configuration
from connect_settings.configure_page import PageState, read_state
from connect_settings.models import AddonSetting, Configuration, ConfigurationChange
from connect_settings.testing import DEFAULT_SECRET, make_tenant, signed_url

pytestmark = pytest.mark.django_db(transaction=True)

PAGE = "/configure?xdm_e=https%3A%2F%2Fexample.atlassian.net&cp=&lic=none"
KEY = str(conf.CONFIGURE_SETTING_KEY)


@pytest.fixture
def tenant(redis_cache: Any) -> Any:
    return make_tenant()


def read(tenant: Any) -> tuple[PageState, int]:
    with CaptureQueriesContext(connection) as queries:
        state = read_state(tenant)
    return state, len(queries.captured_queries)


def warm(tenant: Any) -> PageState:
    read(tenant)
    state, queries = read(tenant)
    assert queries == 0
    return state


def test_a_warm_read_makes_no_query_and_gives_the_same_state(tenant: Any) -> None:
    save_configuration(tenant, {"team_name": "Ops"})
    first, queries = read(tenant)
    assert queries == 1
    second, queries = read(tenant)
    assert queries == 0
    assert second == first and second.stored["team_name"] == "Ops" and second.version == 1


def test_each_read_gets_its_own_values(tenant: Any) -> None:
    save_configuration(tenant, {"team_name": "Ops"})
    state = warm(tenant)
    state.stored["team_name"] = "changed by a view"  # must not reach the next page
    assert read(tenant)[0].stored["team_name"] == "Ops"


def test_a_page_load_makes_no_query_once_warm(client: Any, tenant: Any) -> None:
    url = signed_url(tenant.client_key, DEFAULT_SECRET, PAGE)
    assert client.get(url).status_code == 200
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200 and queries.captured_queries == []


def test_a_save_is_read_at_once(tenant: Any) -> None:
    save_configuration(tenant, {"team_name": "Ops"})
    warm(tenant)
    save_configuration(tenant, {"team_name": "Platform"}, version=1)
    state, queries = read(tenant)
    assert queries == 1 and state.stored["team_name"] == "Platform" and state.version == 2


def test_store_writes_of_the_key_are_read_at_once(tenant: Any) -> None:
    warm(tenant)
    store.set(KEY, {"team_name": "Set directly"}, tenant.client_key)
    assert read(tenant)[0].stored == {"team_name": "Set directly"}
    warm(tenant)
    assert store.delete(KEY, tenant.client_key)
    assert read(tenant)[0].stored == {}


def test_writes_of_other_keys_keep_the_copy(tenant: Any) -> None:
    warm(tenant)
    store.set("another-key", {"x": 1}, tenant.client_key)
    assert read(tenant)[1] == 0


@pytest.mark.parametrize("write", ["setting", "configuration", "history"])
def test_model_instance_writes_are_read_at_once(tenant: Any, write: str) -> None:
    """What the admin and an integrator's ORM code do: save() and delete() of the rows."""
    save_configuration(tenant, {"team_name": "Ops"})
    before = warm(tenant)
    if write == "setting":
        row = AddonSetting.objects.get(tenant=tenant, key=KEY)
        row.value = {"team_name": "Edited in the admin"}
        row.save()
        assert read(tenant)[0].stored["team_name"] == "Edited in the admin"
    elif write == "configuration":
        row = Configuration.objects.get(tenant=tenant)
        row.version = 7
        row.save()
        assert read(tenant)[0].version == 7
    else:
        ConfigurationChange.objects.filter(tenant=tenant).delete()  # per instance: signals
        assert before.has_history and not read(tenant)[0].has_history


def published(redis_cache: Any) -> Any:
    """A subscription to the invalidation channel; call it for what was published since."""
    client = tenants._redis_client(redis_cache)
    pubsub = client.pubsub()
    pubsub.subscribe(tenants._channel(redis_cache, client))
    assert pubsub.get_message(timeout=2.0)["type"] == "subscribe"

    def messages() -> list[str]:
        found = []
        # PUBLISH answers once Redis has queued the message: it is there to read.
        while (message := pubsub.get_message(timeout=0.2)) is not None:
            found.append(message["data"].decode())
        return found

    return messages


def test_deleting_a_tenant_sends_no_message_per_row(tenant: Any, redis_cache: Any) -> None:
    for name in ("Ops", "Platform", "Billing"):
        save_configuration(tenant, {"team_name": name})
    key = configuration.state_copy_key(tenant.pk)
    messages = published(redis_cache)
    ConfigurationChange.objects.filter(tenant=tenant).first().delete()  # type: ignore[union-attr]
    assert messages() == [key]
    tenant.delete()  # its settings row, its version row and two changes go with it
    assert key not in messages()
    assert not AddonSetting.objects.exists() and not ConfigurationChange.objects.exists()


def test_inside_a_transaction_the_database_is_read_and_nothing_kept(tenant: Any) -> None:
    save_configuration(tenant, {"team_name": "Ops"})
    warm(tenant)
    with pytest.raises(RuntimeError), transaction.atomic():
        save_configuration(tenant, {"team_name": "Never committed"})
        state, queries = read(tenant)
        assert queries == 1 and state.stored["team_name"] == "Never committed"
        raise RuntimeError("roll back")
    state, _ = read(tenant)
    assert state.stored["team_name"] == "Ops" and state.version == 1


def test_a_read_from_before_a_commit_is_not_kept(tenant: Any) -> None:
    key = configuration.state_copy_key(tenant.pk)
    _, stamp = tenants.local_copy(key)
    assert stamp is not None
    configuration.forget_state_copies(tenant.pk)  # another process's commit, say
    tenants.keep_local_copy(key, ("read before it",), stamp)
    assert tenants.local_copy(key)[0] is None


class WritesElsewhere:
    """Reads from "default", writes (never made here) to a primary under another name."""

    def db_for_read(self, model: Any, **hints: Any) -> str:
        return "default"

    def db_for_write(self, model: Any, **hints: Any) -> str:
        return "primary"


def test_reads_routed_away_from_the_writes_keep_nothing(tenant: Any, settings: Any) -> None:
    settings.DATABASE_ROUTERS = [f"{__name__}.WritesElsewhere"]
    read(tenant)
    assert read(tenant)[1] == 1  # a replica may lag behind an invalidation


def test_other_cache_backends_keep_nothing() -> None:
    tenant = make_tenant()
    assert tenants._redis_client(caches[conf.TENANT_CACHE]) is None  # the local memory cache
    read(tenant)
    assert read(tenant)[1] == 1


def test_a_failed_invalidation_does_not_fail_the_committed_save(
    tenant: Any, settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # Redis goes away after the tenant was read: nothing listens on port 1.
    settings.CACHES = {
        **settings.CACHES,
        "tenants": {**settings.CACHES["tenants"], "LOCATION": "redis://127.0.0.1:1/0"},
    }
    with caplog.at_level(logging.WARNING, logger="connect_settings.tenants"):
        result = save_configuration(tenant, {"team_name": "Ops"})
    assert result.version == 1
    assert "Could not publish an invalidation" in caplog.text
    assert Configuration.objects.get(tenant=tenant).version == 1


# --- PostgreSQL: a save publishes only while a process may hold a copy -----------------------


@pytest.fixture
def postgres() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: run with DATABASE_URL=postgres://... (CI does)")


def held(tenant: Any) -> bool:
    return Configuration.objects.get(tenant=tenant).copies_held


@pytest.mark.postgres
def test_a_save_publishes_only_while_a_copy_may_be_held(
    postgres: None, tenant: Any, redis_cache: Any
) -> None:
    """A read that a process keeps marks the configuration row; the next save clears the
    mark and publishes. A save with no read since publishes nothing: no process holds a
    copy for it to drop (the page's own saves, one after another, are such saves)."""
    key = configuration.state_copy_key(tenant.pk)
    save_configuration(tenant, {"team_name": "Ops"})  # the first: rows locked, published
    messages = published(redis_cache)
    save_configuration(tenant, {"team_name": "Platform"})
    assert messages() == [] and not held(tenant)
    assert warm(tenant).stored["team_name"] == "Platform" and held(tenant)
    save_configuration(tenant, {"team_name": "Billing"})
    assert messages() == [key] and not held(tenant)
    state, queries = read(tenant)
    assert queries == 1 and state.stored["team_name"] == "Billing" and state.version == 3
    save_configuration(tenant, {"team_name": "Support"})
    assert messages() == [key]  # the read just now was kept
    save_configuration(tenant, {"team_name": "Sales"})
    assert messages() == []
    assert read(tenant)[0].stored["team_name"] == "Sales"


@pytest.mark.postgres
def test_every_process_s_read_marks_the_row(postgres: None, tenant: Any) -> None:
    """The mark is set by every read that is kept, also when another process set it first
    (the read answers the newest version only through its own UPDATE)."""
    save_configuration(tenant, {"team_name": "Ops"})
    warm(tenant)
    tenants._local.drop(configuration.state_copy_key(tenant.pk))  # as another process
    state, queries = read(tenant)
    assert queries == 1 and state.version == 1
    assert read(tenant)[1] == 0 and held(tenant)


@pytest.mark.postgres
def test_a_read_overtaken_by_a_save_keeps_no_copy(postgres: None, tenant: Any) -> None:
    """A save that commits while a read is under way, cleared mark and all: the read answers
    what its snapshot held (the old version) and must not keep it, since the save found no
    mark to publish for. The read's UPDATE waits for the save's lock and answers the newest
    version, which differs from the snapshot's."""
    import psycopg

    save_configuration(tenant, {"team_name": "Ops"})
    save_configuration(tenant, {"team_name": "Platform"})  # version 2, rows in place
    saver = psycopg.connect(**connection.get_connection_params())
    table = Configuration._meta.db_table
    saver.execute(  # a save in progress: rows locked and written, not yet committed
        f"UPDATE {table} SET version = version + 1, copies_held = false WHERE tenant_id = %s",
        [tenant.pk],
    )
    results: list[Any] = []

    def page_load() -> None:
        try:
            results.append(read_state(tenant))
        finally:
            connections.close_all()

    reader = threading.Thread(target=page_load)
    reader.start()
    try:
        wait_until_blocked_by(saver)
    finally:
        saver.commit()
        saver.close()
        reader.join(timeout=30)
    assert not reader.is_alive()
    assert [state.version for state in results] == [2]  # the snapshot, before the save
    assert tenants.local_copy(configuration.state_copy_key(tenant.pk))[0] is None
    assert read(tenant)[0].version == 3


def wait_until_blocked_by(blocker: Any, timeout: float = 10.0) -> None:
    """Return once a backend waits for a lock ``blocker`` holds (bounded polling of
    ``pg_blocking_pids``: a statement waiting on a lock gives no other sign)."""
    pid = blocker.info.backend_pid
    deadline = time.monotonic() + timeout
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))",
                [pid],
            )
            if cursor.fetchone()[0]:
                return
            time.sleep(0.01)  # polling for the other thread's state, not hiding a race
    raise AssertionError("the read never waited for the save's lock")
