"""The process-local layer of the tenant cache (``tenants._local``) on a real Redis.

Cross-process invalidation is covered by ``test_tenant_cache.py`` (a second worker process);
here: what is kept locally, what may never be kept, and what happens when the invalidation
channel breaks.
"""

from __future__ import annotations

import json
import os
import select
import signal
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from connect_settings import tenants
from connect_settings.testing import make_tenant

pytestmark = pytest.mark.django_db

CLIENT_KEY = "local-layer-client-key"


def lookups(client_key: str = CLIENT_KEY) -> tuple[Any, int]:
    with CaptureQueriesContext(connection) as queries:
        tenant = tenants.get_tenant(client_key)
    return tenant, len(queries.captured_queries)


def test_second_read_is_kept_and_served_without_redis(redis_cache: Any) -> None:
    make_tenant(CLIENT_KEY)
    assert lookups()[1] == 1  # database, then the shared cache is filled
    assert lookups()[1] == 0  # shared cache, copied locally
    assert len(tenants._local.entries) == 1
    # Remove the shared entry behind the layer's back: the local copy still answers.
    redis_cache.delete(tenants._cache_key(tenants._digest(CLIENT_KEY)))
    tenant, queries = lookups()
    assert tenant is not None and tenant.client_key == CLIENT_KEY and queries == 0


def test_each_lookup_gets_its_own_instance(redis_cache: Any) -> None:
    make_tenant(CLIENT_KEY)
    lookups(), lookups()
    first, _ = lookups()
    first.enabled = False  # a view changing its copy must not change the next request's
    second, _ = lookups()
    assert second.enabled is True and second is not first


def test_invalidate_drops_the_local_copy_here_and_in_the_shared_cache(redis_cache: Any) -> None:
    make_tenant(CLIENT_KEY)
    lookups(), lookups()
    tenants.invalidate(CLIENT_KEY)
    assert tenants._local.entries == {}
    assert lookups()[1] == 1  # back to the database


def test_a_copy_read_before_an_invalidation_is_not_kept(redis_cache: Any) -> None:
    make_tenant(CLIENT_KEY)
    lookups()
    digest = tenants._digest(CLIENT_KEY)
    _, stamp = tenants._local.get(digest)
    assert stamp is not None
    fields = redis_cache.get(tenants._cache_key(digest))
    # Another process invalidates between our read of the shared cache and our put.
    client = tenants._redis_client(redis_cache)
    client.publish(tenants._channel(redis_cache, client), digest)
    tenants._local.put(digest, fields, stamp)
    assert digest not in tenants._local.entries


def test_a_broken_channel_drops_the_copies_and_falls_back(redis_cache: Any) -> None:
    make_tenant(CLIENT_KEY)
    lookups(), lookups()
    assert len(tenants._local.entries) == 1
    client = tenants._redis_client(redis_cache)
    killed = client.client_kill_filter(_type="pubsub", skipme=True)
    assert killed >= 1
    tenant, queries = lookups()  # drains, finds the channel closed: copies dropped
    assert tenant is not None and queries == 0  # served by the shared cache instead
    assert tenants._local.entries == {} and tenants._local.pubsub is None
    # Until the retry time, nothing is kept locally (messages may have been lost).
    lookups()
    assert tenants._local.entries == {}


def test_zero_ttl_keeps_nothing_locally(redis_cache: Any, settings: Any) -> None:
    settings.CONNECT_SETTINGS = {**settings.CONNECT_SETTINGS, "TENANT_LOCAL_TTL": 0}
    make_tenant(CLIENT_KEY)
    lookups(), lookups(), lookups()
    assert tenants._local.entries == {}


def test_other_backends_keep_nothing_locally(settings: Any) -> None:
    # Local memory is per process already; a file or database cache has no channel.
    make_tenant(CLIENT_KEY)
    lookups(), lookups(), lookups()
    assert tenants._local.entries == {}


def test_store_reads_use_the_local_copy_instead_of_joining(redis_cache: Any) -> None:
    from connect_settings import store

    store.set("k", "v", make_tenant(CLIENT_KEY))
    lookups()
    lookups()  # now held locally
    with CaptureQueriesContext(connection) as queries:
        assert store.get("k", CLIENT_KEY) == "v"
        assert store.all(CLIENT_KEY) == {"k": "v"}
    assert len(queries.captured_queries) == 2
    assert not any("connect_settings_tenant" in q["sql"] for q in queries.captured_queries)


def _in_a_forked_child(check: Any) -> dict[str, Any]:
    """Run ``check()`` in a child forked from this process; its answer comes back as JSON."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: answer, then leave without pytest's or Django's exit handlers
        try:
            os.close(read_end)
            answer = json.dumps(check()).encode()
        except BaseException as err:  # the parent reports it
            answer = json.dumps({"error": repr(err)}).encode()
        os.write(write_end, answer)
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        # Bounded: a child stuck on a lock it inherited fails the test instead of hanging it.
        answered = select.select([pipe], [], [], 20)[0]
        if not answered:
            os.kill(pid, signal.SIGKILL)
        answer = pipe.read() if answered else b""
    _, status = os.waitpid(pid, 0)
    assert answered, "the forked child did not answer within 20 s"
    assert os.waitstatus_to_exitcode(status) == 0
    return json.loads(answer)


@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_a_forked_child_keeps_neither_copies_nor_subscription_nor_lock(
    redis_cache: Any,
) -> None:
    # A server forks its workers: each must subscribe on its own connection, start with no
    # copies, and not wait forever on a lock that a parent's thread held at the fork.
    make_tenant(CLIENT_KEY)
    lookups(), lookups()
    digest = tenants._digest(CLIENT_KEY)
    parent_socket = tenants._local.pubsub.connection._sock
    assert digest in tenants._local.entries

    def check() -> dict[str, Any]:
        locked = tenants._local.lock.acquire(timeout=2)
        if locked:
            tenants._local.lock.release()
        copy, stamp = tenants._local.get(digest)  # subscribes anew (Redis only, no database)
        pubsub = tenants._local.pubsub
        return {
            "lock_free": locked,
            "copy": copy is not None,
            "stamp": stamp is not None,
            "own_socket": pubsub is not None and pubsub.connection._sock is not parent_socket,
        }

    with tenants._local.lock:  # held at the fork, as a thread of the parent might
        child = _in_a_forked_child(check)
    assert child == {"lock_free": True, "copy": False, "stamp": True, "own_socket": True}
    # The parent's subscription and copy are untouched.
    assert tenants._local.pubsub.connection._sock is parent_socket
    assert lookups()[1] == 0 and digest in tenants._local.entries
