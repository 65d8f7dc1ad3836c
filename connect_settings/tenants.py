"""Tenant lookups through a cache shared by workers.

The cache holds the row's field values (the shared secret still encrypted), never the
plaintext secret. Lifecycle changes delete the entry once their transaction commits; unknown
client keys are cached briefly too, so a flood of forged issuers cannot hammer the database.
"""

from __future__ import annotations

import hashlib
from typing import Any

from django.core.cache import caches
from django.db import transaction

from .conf import connect_settings
from .models import Tenant

_MISSING = "missing"
_NEGATIVE_TTL = 30
_FIELDS = [f.attname for f in Tenant._meta.concrete_fields]


def _cache_key(client_key: str) -> str:
    # Client keys come from untrusted tokens: hash them so any value is a valid cache key.
    digest = hashlib.sha256(client_key.encode("utf-8", "surrogatepass")).hexdigest()[:40]
    return f"connect_settings:tenant:v1:{digest}"


def _cache() -> Any:
    return caches[connect_settings.TENANT_CACHE]


def _from_db(client_key: str) -> Tenant | None:
    return Tenant.objects.filter(client_key=client_key).first()


def get_tenant(client_key: str, *, fresh: bool = False) -> Tenant | None:
    """The tenant for ``client_key`` or None; one indexed query on a cache miss, none on a hit."""
    if not isinstance(client_key, str) or not client_key or len(client_key) > 255:
        return None
    cache = _cache()
    key = _cache_key(client_key)
    if not fresh:
        cached = cache.get(key)
        if cached == _MISSING:
            return None
        if isinstance(cached, dict) and cached.get("client_key") == client_key:
            tenant = Tenant(**cached)
            tenant._state.adding = False
            return tenant
    tenant = _from_db(client_key)
    if tenant is None:
        cache.set(key, _MISSING, _NEGATIVE_TTL)
    else:
        cache.set(key, {f: getattr(tenant, f) for f in _FIELDS}, connect_settings.TENANT_CACHE_TTL)
    return tenant


def invalidate(client_key: str) -> None:
    """Forget the cached tenant now and again when the current transaction commits."""
    key = _cache_key(client_key)
    _cache().delete(key)
    transaction.on_commit(lambda: _cache().delete(key))
