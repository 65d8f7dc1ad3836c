"""Tenant lookups through a cache shared by workers, with a process-local layer on Redis.

The shared cache (``TENANT_CACHE``) holds the row's field values (the shared secret still
encrypted), never the plaintext secret. Lifecycle changes delete the entry once their
transaction commits; unknown client keys are cached briefly too, so a flood of forged issuers
cannot hammer the database.

When that cache is Redis, each process also keeps the entries it has read (for at most
``TENANT_LOCAL_TTL`` seconds), which spares every authenticated request a Redis round trip.
Other per-tenant data read on every request (the configure page's state) is kept the same
way, under keys of its own, through :func:`local_copy`, :func:`keep_local_copy` and
:func:`forget_local_copies`.
Invalidations are published on a Redis channel, and each process drains its subscription,
without blocking, before every read of its local copies: a change committed by any worker is
seen by the next request in every other one, as with the shared cache alone. If the
subscription breaks, the local copies are dropped and not used until it is back. Other cache
backends have no such channel, and are read on every request.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import select
import threading
import time
from functools import lru_cache
from typing import Any

from django.core.cache import caches
from django.core.signals import setting_changed
from django.db import transaction
from django.db.models.base import ModelState
from django.dispatch import receiver

from .conf import connect_settings
from .models import Tenant

logger = logging.getLogger(__name__)

_MISSING = "missing"
_NEGATIVE_TTL = 30
_FIELDS = [f.attname for f in Tenant._meta.concrete_fields]
_FIELD_SET = frozenset(_FIELDS)
#: Drops every local copy (when a process resubscribes, or is told so on the channel).
_ALL = "*"
#: Local copies kept per process; beyond it the oldest go (a tenant only costs a Redis read).
_LOCAL_MAX = 10_000
#: After the subscription fails, how long to run on the shared cache alone before retrying.
_RESUBSCRIBE_AFTER = 5.0


@lru_cache(maxsize=4096)
def _digest(client_key: str) -> str:
    # Client keys come from untrusted tokens: hash them so any value is a valid cache key.
    return hashlib.sha256(client_key.encode("utf-8", "surrogatepass")).hexdigest()[:40]


def _cache_key(digest: str) -> str:
    return f"connect_settings:tenant:v1:{digest}"


def _cache() -> Any:
    return caches[connect_settings.TENANT_CACHE]


def _channel(cache: Any, client: Any) -> str:
    # Pub/sub channels ignore Redis database numbers: name the database, and the key prefix
    # keeps apart apps sharing one.
    db = client.connection_pool.connection_kwargs.get("db", 0)
    return str(cache.make_key(f"connect_settings:tenants:invalidated:{db}"))


def _redis_client(cache: Any) -> Any | None:
    """The redis-py client behind a Redis cache backend (Django's or django-redis), else None."""
    try:
        from django.core.cache.backends.redis import RedisCache
    except ImportError:  # pragma: no cover - Django < 4.0
        RedisCache = ()
    if isinstance(cache, RedisCache):
        return cache._cache.get_client(write=True)  # Django's backend has no public accessor
    if type(cache).__module__.startswith("django_redis"):
        return cache.client.get_client(write=True)
    return None


class _LocalTenants:
    """This process's copies of shared-cache entries, and the subscription that drops them."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        #: Keyed by a client key's digest (tenants) or another module's key (local_copy).
        self.entries: dict[str, tuple[Any, float]] = {}
        #: Counts invalidations seen: a copy read before one must not be kept after it.
        self.generation = 0
        self.pubsub: Any = None
        #: Polls the subscription's socket: a microsecond, where redis-py's get_message()
        #: costs about fifteen even when nothing is waiting.
        self.poller: Any = None
        self.retry_at = 0.0

    def reset(self) -> None:
        with self.lock:
            self._close()
            self.retry_at = 0.0

    def after_fork(self) -> None:
        """In a forked child (a server's worker): neither the parent's subscription nor its
        copies are ours, and its lock may have been held by a thread the child lacks."""
        self.lock = threading.Lock()
        self.pubsub = self.poller = None  # the socket is the parent's: drop it, don't close it
        self.retry_at = 0.0
        self._forget(_ALL)

    def _close(self) -> None:
        self._forget(_ALL)
        if self.pubsub is not None:
            with contextlib.suppress(Exception):  # closing a broken connection may fail again
                self.pubsub.close()
        self.pubsub = self.poller = None

    def _forget(self, digest: str) -> None:
        self.generation += 1
        if digest == _ALL:
            self.entries.clear()
        else:
            self.entries.pop(digest, None)

    def _subscribe(self, cache: Any) -> None:
        client = _redis_client(cache)
        if client is None:
            self.retry_at = float("inf")  # no channel on this backend: never local copies
            return
        try:
            pubsub = client.pubsub()
            pubsub.subscribe(_channel(cache, client))
            # Wait for the confirmation: from then on every invalidation reaches us.
            deadline = time.monotonic() + 2.0
            while (message := pubsub.get_message(timeout=1.0)) is None or message[
                "type"
            ] != "subscribe":
                if time.monotonic() > deadline:
                    raise TimeoutError("no subscription confirmation")
        except Exception:  # any failure: run on the shared cache for now
            logger.warning("Tenant invalidations unavailable; local copies off for a while")
            self.retry_at = time.monotonic() + _RESUBSCRIBE_AFTER
            return
        self.pubsub = pubsub
        sock = getattr(pubsub.connection, "_sock", None)  # redis-py keeps it private
        if sock is not None and hasattr(select, "poll"):
            self.poller = select.poll()
            self.poller.register(sock, select.POLLIN)
        self._forget(_ALL)

    def _drained(self) -> bool:
        """Whether local copies may be used: subscribed in this process, messages drained."""
        if self.pubsub is None:
            if time.monotonic() < self.retry_at:
                return False
            self._subscribe(_cache())
            if self.pubsub is None:
                return False
        if self.poller is not None and not self.poller.poll(0):
            return True  # nothing arrived (a closed socket polls as readable, and fails below)
        try:
            while (message := self.pubsub.get_message(timeout=0.0)) is not None:
                if message["type"] == "message":
                    data = message["data"]
                    self._forget(data.decode() if isinstance(data, bytes) else str(data))
        except Exception:  # a broken subscription may have lost messages
            logger.warning("Tenant invalidation channel lost; local copies dropped")
            self._close()
            self.retry_at = time.monotonic() + _RESUBSCRIBE_AFTER
            return False
        return True

    def get(self, digest: str) -> tuple[Any | None, int | None]:
        """(the local copy or None, the stamp to :meth:`put` a copy read now; None: don't)."""
        with self.lock:
            if not self._drained():
                return None, None
            entry = self.entries.get(digest)
            if entry is not None and entry[1] < time.monotonic():
                del self.entries[digest]
                entry = None
            return (entry[0] if entry else None), self.generation

    def put(self, digest: str, fields: Any, stamp: int) -> None:
        ttl = float(connect_settings.TENANT_LOCAL_TTL)
        with self.lock:
            # Drain, then keep the copy only if nothing was invalidated since it was read.
            if ttl <= 0 or not self._drained() or self.generation != stamp:
                return
            if len(self.entries) >= _LOCAL_MAX:
                del self.entries[next(iter(self.entries))]
            self.entries[digest] = (fields, time.monotonic() + ttl)

    def drop(self, digest: str) -> None:
        with self.lock:
            self._forget(digest)


_local = _LocalTenants()
# A hook rather than comparing os.getpid() on every read: that is a system call per request.
os.register_at_fork(after_in_child=_local.after_fork)


@receiver(setting_changed)
def _settings_changed(*, setting: str, **kwargs: Any) -> None:
    if setting in ("CACHES", "CONNECT_SETTINGS"):
        _local.reset()


def _from_db(client_key: str) -> Tenant | None:
    return Tenant.objects.filter(client_key=client_key).first()


def _tenant(fields: dict[str, Any]) -> Tenant:
    # A fresh instance per call (views may change theirs), rebuilt the way Django unpickles a
    # model instance (__new__, then the field values): a tenth of Tenant(**fields)'s cost.
    tenant = Tenant.__new__(Tenant)
    tenant.__dict__.update(fields)
    tenant._state = ModelState()
    tenant._state.adding = False
    return tenant


def is_client_key(value: Any) -> bool:
    """Whether ``value`` could name a tenant (a string of 1 to 255 characters)."""
    return isinstance(value, str) and 0 < len(value) <= 255


def held_tenant(client_key: str) -> Tenant | None:
    """This process's own copy of the tenant, or None: no cache or database round trip."""
    if not is_client_key(client_key):
        return None
    fields, _ = _local.get(_digest(client_key))
    if fields is not None and fields.get("client_key") == client_key:
        return _tenant(fields)
    return None


def get_tenant(client_key: str, *, fresh: bool = False) -> Tenant | None:
    """The tenant for ``client_key`` or None; one indexed query on a cache miss, none on a hit."""
    if not is_client_key(client_key):
        return None
    digest = _digest(client_key)
    stamp = None
    if fresh:
        _local.drop(digest)
    else:
        fields, stamp = _local.get(digest)
        if fields is not None and fields.get("client_key") == client_key:
            return _tenant(fields)
    cache = _cache()
    key = _cache_key(digest)
    if not fresh:
        cached = cache.get(key)
        if cached == _MISSING:
            return None
        # An entry written before a migration added a field is a miss, not a KeyError.
        if (
            isinstance(cached, dict)
            and cached.get("client_key") == client_key
            and _FIELD_SET <= cached.keys()
        ):
            if stamp is not None:
                _local.put(digest, cached, stamp)
            return _tenant(cached)
    tenant = _from_db(client_key)
    if tenant is None:
        cache.set(key, _MISSING, _NEGATIVE_TTL)
    else:
        cache.set(key, {f: getattr(tenant, f) for f in _FIELDS}, connect_settings.TENANT_CACHE_TTL)
    return tenant


def local_copy(key: str) -> tuple[Any | None, int | None]:
    """This process's copy under ``key`` (None if it holds none) and the stamp to pass to
    :func:`keep_local_copy` with a value read from the database now; a stamp of None: keep
    nothing (the cache is not Redis, or its invalidation channel is down)."""
    return _local.get(key)


def keep_local_copy(key: str, value: Any, stamp: int) -> None:
    """Keep ``value`` (read after :func:`local_copy` gave ``stamp``) for at most
    ``TENANT_LOCAL_TTL`` seconds, unless an invalidation arrived since that stamp. The value
    is handed to every later reader: keep only immutable values."""
    _local.put(key, value, stamp)


def forget_local_copies(key: str, *, using: str | None = None) -> None:
    """Make every process drop its copy under ``key`` once the current transaction commits
    (at once outside one). Until then the others' copies are the committed state; a copy
    read meanwhile is dropped by the message, or not kept (see :func:`keep_local_copy`)."""

    def forget() -> None:
        try:
            _forget_everywhere(key, shared=False)
        except Exception:  # the write has committed: its request must not fail now
            logger.warning(
                "Could not publish an invalidation; other processes may keep a copy for up "
                "to TENANT_LOCAL_TTL seconds"
            )

    transaction.on_commit(forget, using=using)


def _forget_everywhere(digest: str, *, shared: bool = True) -> None:
    """Delete the shared entry (unless not ``shared``) and tell every process to drop its
    copy."""
    _local.drop(digest)
    cache = _cache()
    client = _redis_client(cache)
    if client is None:
        if shared:
            cache.delete(_cache_key(digest))
        return
    if not shared:
        client.publish(_channel(cache, client), digest)
        return
    # One round trip for both (a reinstall makes this call twice).
    with client.pipeline(transaction=False) as pipe:
        pipe.delete(cache.make_key(_cache_key(digest)))
        pipe.publish(_channel(cache, client), digest)
        pipe.execute()


def invalidate(client_key: str) -> None:
    """Forget the cached tenant in every process, now and again when the current transaction
    commits (the second time for a reader that filled the cache from the old row meanwhile)."""
    digest = _digest(client_key)
    _forget_everywhere(digest)
    transaction.on_commit(lambda: _forget_everywhere(digest))
