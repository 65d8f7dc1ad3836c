"""Forge Remote: Forge Invocation Token (FIT) verification and installation -> tenant mapping.

A FIT is RS256, signed with a key from Atlassian's JWKS (chosen by ``kid``), ``iss`` =
``forge/invocation-token``, ``aud`` = our app's ARI, with ``iat``/``nbf``/``exp``/``jti``. Only
an invalid FIT is answered 401 (Forge reports that as INVALID_FORGE_INVOCATION_TOKEN); an
installation we cannot map to a tenant is a 404 naming the problem, never another tenant's
data. The FIT and the OAuth tokens never reach a log or an error message.
"""

from __future__ import annotations

import fnmatch
import hashlib
import logging
import re
import threading
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import jwt as pyjwt
from django.core.cache import caches
from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.utils import timezone

from . import __version__, crypto
from .auth import ConnectContext, TokenKind
from .conf import connect_settings
from .exceptions import AuthenticationFailed, ConnectError, ServiceUnavailable
from .jwt import tokens
from .jwt.errors import KeyUnavailable, TokenError
from .jwt.jwks import JwksCache
from .models import ForgeInstallation, Tenant
from .payloads import LOOPBACK_HOSTS
from .tenants import get_tenant

logger = logging.getLogger("connect_settings.forge")

FIT_ISSUER = "forge/invocation-token"
APP_ARI = re.compile(r"ari:cloud:ecosystem::app/[0-9a-fA-F-]{1,64}")
INSTALLATION_ARI = re.compile(r"ari:cloud:ecosystem::installation/[0-9a-fA-F-]{1,64}")
IC_LABEL = re.compile(r"[a-z0-9_-]{1,50}")
KID_SHAPE = re.compile(r"[A-Za-z0-9._/:-]{1,256}")
STAGING_API = "https://api.stg.atlassian.com/"
#: Without a readable ``exp``, a system token is trusted for this long (they live up to 4 h).
SYSTEM_TOKEN_FALLBACK_TTL = timedelta(minutes=15)
SYSTEM_HEADER = "HTTP_X_FORGE_OAUTH_SYSTEM"
USER_HEADER = "HTTP_X_FORGE_OAUTH_USER"


class UnknownInstallation(ConnectError):
    """The FIT is valid, but its installation maps to no tenant we know."""

    code = "unknown_installation"
    status = 404


class ForgeNotConfigured(ConnectError):
    code = "forge_not_configured"
    status = 503


_lock = threading.Lock()
_caches: dict[str, JwksCache] = {}


def reset() -> None:
    with _lock:
        _caches.clear()


def _jwks(staging: bool) -> JwksCache:
    name = "staging" if staging else "production"
    with _lock:
        cache = _caches.get(name)
        if cache is None:
            urls = (
                connect_settings.FORGE_STAGING_JWKS_URLS
                if staging
                else connect_settings.FORGE_JWKS_URLS
            )
            cache = JwksCache(
                list(urls),
                timeout=float(connect_settings.FORGE_JWKS_TIMEOUT),
                cooldown=float(connect_settings.FORGE_JWKS_COOLDOWN),
                user_agent=f"django-connect-settings/{__version__}",
            )
            _caches[name] = cache
        return cache


def _fail(code: str, message: str) -> AuthenticationFailed:
    return AuthenticationFailed(message, code=code)


def api_host_allowed(url: str) -> bool:
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if not host or (parts.scheme != "https" and host not in LOOPBACK_HOSTS):
        return False
    return any(fnmatch.fnmatchcase(host, str(p).lower()) for p in connect_settings.FORGE_API_HOSTS)


def verify_fit(token: str) -> dict[str, Any]:
    """The claims of a valid FIT for our app; AuthenticationFailed (401) otherwise."""
    app_id = connect_settings.FORGE_APP_ID
    if not app_id:
        raise ForgeNotConfigured("Forge Remote is not configured (FORGE_APP_ID).")
    try:
        header, unverified = tokens.read_unverified(token)
        if header.get("alg") != "RS256":
            raise TokenError("Forge invocation tokens are RS256.", code="wrong_algorithm")
        kid = header.get("kid")
        if not isinstance(kid, str) or not KID_SHAPE.fullmatch(kid):
            raise TokenError("The token's key id (kid) has an invalid shape.", code="invalid_kid")
        app = unverified.get("app") if isinstance(unverified.get("app"), dict) else {}
        api_base = app.get("apiBaseUrl")
        staging = isinstance(api_base, str) and api_base.startswith(STAGING_API)
        key = _jwks(staging).get(kid)
        claims = pyjwt.decode(
            token,
            key,
            algorithms=["RS256"],
            audience=app_id,
            issuer=FIT_ISSUER,
            leeway=float(connect_settings.FORGE_LEEWAY),
            options={"require": ["iss", "aud", "exp", "iat", "nbf", "jti"]},
        )
    except KeyUnavailable as err:
        raise ServiceUnavailable(err.message, code="jwks_unavailable") from err
    except TokenError as err:
        raise _fail(err.code, err.message) from err
    except pyjwt.PyJWTError as err:
        translated = tokens.translate_error(err)
        raise _fail(translated.code, translated.message) from err
    _check_shape(claims, app_id)
    return claims


def _check_shape(claims: dict[str, Any], app_id: str) -> None:
    app = claims.get("app")
    if not isinstance(app, dict) or app.get("id") != app_id:
        raise _fail("invalid_audience", "The token is for another app.")
    if not isinstance(claims.get("jti"), str) or not claims["jti"]:
        raise _fail("missing_claim", "The token has no 'jti' claim.")
    installation = app.get("installationId")
    if not isinstance(installation, str) or not INSTALLATION_ARI.fullmatch(installation):
        raise _fail("malformed_token", "The token's installation id is malformed.")
    api_base = app.get("apiBaseUrl")
    if api_base is not None and not (isinstance(api_base, str) and api_host_allowed(api_base)):
        raise _fail("malformed_token", "The token's apiBaseUrl is not an Atlassian API host.")
    if "icLabel" in claims and not (
        isinstance(claims["icLabel"], str) and IC_LABEL.fullmatch(claims["icLabel"])
    ):
        raise _fail("malformed_token", "The token's icLabel is malformed.")


def bearer_token(request: HttpRequest) -> str | None:
    header = request.META.get("HTTP_AUTHORIZATION", "")
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    value = value.strip()
    if not value or " " in value:
        raise _fail("malformed_token", "The Authorization header is not 'Bearer <token>'.")
    return value


def cloud_id_of(claims: dict[str, Any]) -> str:
    context = claims.get("context") if isinstance(claims.get("context"), dict) else {}
    if isinstance(context.get("cloudId"), str):
        return context["cloudId"]
    app = claims.get("app") or {}
    contexts = (app.get("installation") or {}).get("contexts") or []
    for item in contexts:
        if isinstance(item, dict) and isinstance(item.get("cloudId"), str):
            return item["cloudId"]
    return ""


def _token_expiry(token: str) -> datetime:
    try:
        _, claims = tokens.read_unverified(token)
        return datetime.fromtimestamp(int(claims["exp"]), tz=UTC)
    except (TokenError, KeyError, TypeError, ValueError, OverflowError):
        return timezone.now() + SYSTEM_TOKEN_FALLBACK_TTL


def _token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def remember_system_token(installation: ForgeInstallation, token: str | None) -> None:
    """Keep the newest system token (encrypted) for deliveries made outside a request."""
    if not token:
        return
    cache = caches[connect_settings.TENANT_CACHE]
    marker = f"connect_settings:forge:systoken:{installation.pk}"
    digest = _token_digest(token)
    if cache.get(marker) == digest:
        return  # already stored: no write per request
    installation.system_token_encrypted = crypto.encrypt(token)
    installation.system_token_expires_at = _token_expiry(token)
    installation.last_seen_at = timezone.now()
    installation.save(
        update_fields=["system_token_encrypted", "system_token_expires_at", "last_seen_at"]
    )
    cache.set(marker, digest, 3600)
    # Deliveries that waited for a way to reach the host can go now.
    from . import mirror

    mirror.resume_tenant(installation.tenant, retry_failed=True)


def _site_match(site_url: str) -> Tenant | None:
    parts = urlsplit(site_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    origin = f"{parts.scheme}://{parts.netloc}".lower()
    matches = [
        t
        for t in Tenant.objects.filter(installed=True).only(
            "pk", "client_key", "base_url", "display_url"
        )
        if origin in {_origin(t.base_url), _origin(t.display_url)}
    ]
    return matches[0] if len(matches) == 1 else None


def _origin(url: str) -> str:
    parts = urlsplit(url or "")
    return f"{parts.scheme}://{parts.netloc}".lower() if parts.netloc else ""


def _reserved_client_key(claims: dict[str, Any], system_token: str) -> str | None:
    from .client import ForgeClient, HostError
    from .properties import RESERVED_KEY, AppProperties

    api_base = (claims.get("app") or {}).get("apiBaseUrl")
    if not isinstance(api_base, str) or not api_host_allowed(api_base):
        return None
    try:
        client = ForgeClient(api_base, system_token)
        value = AppProperties(None, client=client).get(RESERVED_KEY)
    except HostError as err:
        logger.info("Reading the reserved clientKey property failed: %s", err.code)
        return None
    return value if isinstance(value, str) and value else None


def resolve_installation(
    claims: dict[str, Any], system_token: str | None = None, *, site_url: str | None = None
) -> ForgeInstallation:
    """The tenant mapping for the FIT's installation, learning it on first sight.

    In order: a known mapping; the Connect install payload's ``installationId``; the
    reserved clientKey app property read with the system token; the site URL.
    """
    app = claims["app"]
    installation_id: str = app["installationId"]
    known = (
        ForgeInstallation.objects.select_related("tenant")
        .filter(installation_id=installation_id)
        .first()
    )
    if known is not None:
        remember_system_token(known, system_token)
        return known

    context = claims.get("context") if isinstance(claims.get("context"), dict) else {}
    source = ForgeInstallation.Source.CONNECT_PAYLOAD
    tenant = Tenant.objects.filter(installation_id=installation_id).first()
    if tenant is None and system_token:
        client_key = _reserved_client_key(claims, system_token)
        tenant = get_tenant(client_key) if client_key else None
        source = ForgeInstallation.Source.RESERVED_PROPERTY
    site = site_url or context.get("siteUrl")
    if tenant is None and isinstance(site, str):
        tenant = _site_match(site)
        source = ForgeInstallation.Source.SITE_URL
    if tenant is None:
        raise UnknownInstallation(
            "This Forge installation is not linked to any Connect tenant of this app."
        )
    api_base = app.get("apiBaseUrl") if isinstance(app.get("apiBaseUrl"), str) else ""
    environment = (
        (app.get("environment") or {}).get("type")
        if isinstance(app.get("environment"), dict)
        else ""
    )
    try:
        with transaction.atomic():
            mapping = ForgeInstallation.objects.create(
                installation_id=installation_id,
                tenant=tenant,
                cloud_id=cloud_id_of(claims),
                site_url=site if isinstance(site, str) else "",
                api_base_url=api_base,
                environment=environment or "",
                source=source,
            )
    except IntegrityError:  # a concurrent first request learnt it too
        mapping = ForgeInstallation.objects.get(installation_id=installation_id)
    logger.info(
        "Forge installation %s mapped to tenant %s (%s)", installation_id, tenant.client_key, source
    )
    remember_system_token(mapping, system_token)
    return mapping


def authenticate_forge(request: HttpRequest) -> ConnectContext:
    """Verify the request's FIT and find its tenant: ``request.connect`` for Forge Remote."""
    token = bearer_token(request)
    if token is None:
        raise _fail("missing_token", "The request carries no Forge invocation token.")
    claims = verify_fit(token)
    system_token = request.META.get(SYSTEM_HEADER) or None
    mapping = resolve_installation(claims, system_token)
    tenant = get_tenant(
        Tenant.objects.filter(pk=mapping.tenant_id).values_list("client_key", flat=True).first()
        or ""
    )
    if tenant is None:
        raise UnknownInstallation("This Forge installation's tenant no longer exists.")
    return ConnectContext(
        tenant=tenant,
        claims=claims,
        kind=TokenKind.FORGE,
        installation_id=mapping.installation_id,
        cloud_id=cloud_id_of(claims) or mapping.cloud_id or None,
        system_token=system_token,
    )
