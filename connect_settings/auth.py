"""The one authentication pipeline behind the middleware and the view decorators.

find the token -> read its claims unverified (only to choose the tenant) -> look the tenant
up (cache, at most one indexed query) -> verify HS256 with the tenant's secret -> check the
qsh the way the token kind requires -> ``ConnectContext``.
"""

from __future__ import annotations

import hashlib
import json
import marshal
import time
from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache
from typing import Any, NamedTuple
from urllib.parse import quote, urlsplit

from django.http import HttpRequest
from django.utils.functional import cached_property

from .conf import connect_settings
from .exceptions import AuthenticationFailed
from .jwt import hs256, tokens
from .jwt.canonical import CONTEXT_QSH, QueryInput, canonical_query, canonical_uri
from .jwt.errors import TokenError
from .models import Tenant
from .tenants import get_tenant


class TokenKind(StrEnum):
    #: A host token whose qsh covers this exact request (page loads, webhooks, lifecycle).
    PAGE = "page"
    #: A host context JWT (``AP.context.getToken()``), qsh ``context-qsh``.
    CONTEXT = "context"
    #: An app session token we minted (``X-acpt``), issuer = our app key.
    SESSION = "session"
    #: A Forge Invocation Token (Forge Remote), verified by :mod:`connect_settings.forge`.
    FORGE = "forge"


#: The Connect token kinds (Forge Invocation Tokens are verified by forge.py instead).
ALL_KINDS = frozenset({TokenKind.PAGE, TokenKind.CONTEXT, TokenKind.SESSION})
PAGE_ONLY = frozenset({TokenKind.PAGE})


@dataclass
class ConnectContext:
    """What a verified request carries as ``request.connect``."""

    tenant: Tenant
    claims: dict[str, Any]
    kind: TokenKind
    client_key: str = field(init=False)
    account_id: str | None = field(init=False)
    #: Forge requests only: the installation, its site, and the app system token (never
    #: shown in repr or logs).
    installation_id: str | None = None
    cloud_id: str | None = None
    system_token: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.client_key = self.tenant.client_key
        user = self.claims.get("principal") if self.kind == TokenKind.FORGE else None
        user = user or self.claims.get("sub")
        self.account_id = user if isinstance(user, str) and user else None

    # Django's cached_property: functools' takes a lock on every first read before 3.12.
    @cached_property
    def session_token(self) -> str:
        """A fresh app session token for this tenant and user (minted once per request)."""
        return mint_session_token(self.tenant, self.account_id, self.claims.get("context"))

    def __repr__(self) -> str:
        return f"<ConnectContext {self.client_key!r} kind={self.kind} user={self.account_id!r}>"


#: Session tokens minted in the current second, by everything they are made of. A token is a
#: pure function of these (``iat`` has a one-second resolution), so a user's burst of calls,
#: or many page loads, costs one mint per second instead of one per request.
_minted: dict[tuple[Any, ...], str] = {}
_minted_in = 0  # the second they were minted in
_MINTED_SIZE = 4096


def mint_session_token(
    tenant: Tenant, account_id: str | None, context: Any = None, *, now: float | None = None
) -> str:
    context = context if isinstance(context, dict) else {}
    app_key = connect_settings.APP_KEY
    ttl = int(connect_settings.SESSION_TOKEN_TTL)
    issued = int(now if now is not None else time.time())
    context_key = json.dumps(context, sort_keys=True) if context else ""
    # The encrypted secret stands for the secret (one decrypts to one), so a hit decrypts
    # nothing.
    ciphertext = tenant.shared_secret_encrypted
    key = (ciphertext, app_key, tenant.client_key, account_id or "", context_key, ttl, issued)
    token = _minted.get(key)
    if token is None:
        global _minted_in
        claims: dict[str, Any] = {"iss": app_key, "aud": [tenant.client_key], "context": context}
        if account_id:
            claims["sub"] = account_id
        token = tokens.mint_hs256(claims, tenant.shared_secret, ttl=ttl, now=issued)
        if issued != _minted_in or len(_minted) >= _MINTED_SIZE:
            _minted.clear()  # a new second: the old tokens are never asked for again
            _minted_in = issued
        _minted[key] = token
    return token


class _Seen(NamedTuple):
    """A session token that verified: what a repeat must check again, and its claims."""

    #: ``marshal`` of the verified claims (JSON's types only): each request gets its own copy,
    #: at half the cost of decoding the JSON again.
    claims: bytes
    client_key: str
    #: The encrypted secret that verified it: a reinstall or re-encryption changes it.
    ciphertext: str
    #: The app key it was issued under (``iss``): a session token only while that is ours.
    issuer: str
    not_before: int
    expires: int | None


#: Session tokens whose signature and claims verified, by their text. A page sends one token
#: with each AJAX call until it swaps in the next X-acpt, which changes at most once a second.
#: A repeat skips decoding and the HMAC; the secret, the app key, the tenant's state and the
#: clock are checked again. Page tokens are not kept: each is new, and their qsh is checked
#: per request anyway.
_verified: dict[str, _Seen] = {}
_VERIFIED_SIZE = 4096


def _remember(token: str, claims: dict[str, Any], tenant: Tenant) -> None:
    if len(_verified) >= _VERIFIED_SIZE:
        _verified.clear()  # a flood of distinct tokens only ever costs a full verification
    not_before, expires = hs256.clock_of(claims)
    _verified[token] = _Seen(
        marshal.dumps(claims),
        tenant.client_key,
        tenant.shared_secret_encrypted,
        claims["iss"],
        not_before,
        expires,
    )


def _seen_before(token: str, leeway: float) -> tuple[Tenant, dict[str, Any]] | None:
    """A session token verified earlier, checked again but for its signature (the same text,
    with the same secret, still stored); None when it must be verified in full."""
    seen = _verified.get(token)
    if seen is None:
        return None
    tenant = get_tenant(seen.client_key)
    if (
        tenant is None
        or tenant.shared_secret_encrypted != seen.ciphertext  # reinstalled, or re-encrypted
        or seen.issuer != connect_settings.APP_KEY  # the app key changed: not ours any more
    ):
        _verified.pop(token, None)
        return None
    hs256.check_clock(seen.not_before, seen.expires, leeway=leeway)
    return tenant, marshal.loads(seen.claims)  # noqa: S302 (bytes this process dumped)


def _fail(code: str, message: str) -> AuthenticationFailed:
    return AuthenticationFailed(message, code=code)


def extract_token(request: HttpRequest, *, header_only: bool = False) -> str | None:
    """The token from ``Authorization: JWT <token>`` or ``?jwt=``; None when there is none.

    Another scheme (Basic, Bearer) is "not ours" and yields None; a malformed JWT header is
    an authentication error rather than an IndexError.
    """
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if header:
        scheme, _, value = header.strip().partition(" ")
        if scheme.lower() == "jwt":
            value = value.strip()
            if not value or " " in value:
                raise _fail("malformed_token", "The Authorization header is not 'JWT <token>'.")
            return value
    if header_only:
        return None
    values = request.GET.getlist("jwt")
    if len(values) > 1:
        raise _fail("malformed_token", "The request carries more than one jwt parameter.")
    return values[0] if values and values[0] else None


def has_token(request: HttpRequest) -> bool:
    header = request.META.get("HTTP_AUTHORIZATION", "")
    return header[:4].lower() == "jwt " or "jwt=" in request.META.get("QUERY_STRING", "")


#: Characters left literal when re-encoding a decoded path (RFC 3986 pchar and "/").
_PATH_SAFE = "/!$&'()*+,;=:@~-._"


def request_path(request: HttpRequest) -> str:
    """The request path as the client sent it (still percent-encoded), for the qsh."""
    raw = request.META.get("RAW_URI") or request.META.get("REQUEST_URI")
    if raw and raw.startswith("/") and not raw.startswith("//"):
        # Origin-form request target: the path is everything before '?'. (urlsplit would read
        # '//host/x' as a network location and raise on '//[x'.)
        return raw.split("?", 1)[0].split("#", 1)[0] or "/"
    return quote(request.path, safe=_PATH_SAFE)


def app_base_paths() -> list[str]:
    return list(
        _base_paths(str(connect_settings.BASE_URL), tuple(connect_settings.ALLOWED_BASE_URLS))
    )


@lru_cache(maxsize=8)
def _base_paths(base_url: str, allowed: tuple[Any, ...]) -> tuple[str, ...]:
    paths = [urlsplit(base_url).path.rstrip("/")]
    for url in allowed:
        path = urlsplit(str(url)).path.rstrip("/")
        if path not in paths:
            paths.append(path)
    return tuple(paths)


def _query_pairs(request: HttpRequest) -> QueryInput:
    """The query's (name, value) pairs: Django's parse of it when that is the same (UTF-8),
    which the page's view reads anyway, else the raw query string to parse."""
    query = request.GET
    if (query.encoding or "").lower().replace("_", "-") in ("utf-8", "utf8"):
        return [(name, value) for name, values in query.lists() for value in values]
    return request.META.get("QUERY_STRING", "")


def request_qsh_matches(request: HttpRequest, qsh: str) -> bool:
    method = (request.method or "GET").upper()
    path = request_path(request)
    query = canonical_query(_query_pairs(request))  # the same for every base path
    for base in app_base_paths():
        canonical = f"{method}&{canonical_uri(path, base)}&{query}"
        if hashlib.sha256(canonical.encode("utf-8")).hexdigest() == qsh:
            return True
    return False


def _claim_tenant(claims: dict[str, Any]) -> tuple[str, Tenant | None, bool]:
    """(client key the claims name, its tenant if installed here, whether the token is one
    of our session tokens)."""
    iss = claims.get("iss")
    if not isinstance(iss, str) or not iss:
        raise _fail("missing_claim", "The token has no 'iss' claim.")
    aud = claims.get("aud")
    first_aud = aud[0] if isinstance(aud, list) and aud else aud
    if iss == connect_settings.APP_KEY:
        if not isinstance(first_aud, str) or not first_aud:
            raise _fail("missing_claim", "The session token has no audience.")
        return first_aud, get_tenant(first_aud), True
    # PROTOCOL.md: aud[0] when it names a known tenant, else iss.
    if isinstance(first_aud, str) and first_aud:
        tenant = get_tenant(first_aud)
        if tenant is not None:
            return first_aud, tenant, False
    return iss, get_tenant(iss), False


def _verify_in_full(token: str, leeway: float) -> tuple[Tenant, dict[str, Any], bool]:
    """(tenant, verified claims, whether it is one of our session tokens)."""
    parsed = hs256.parse(token)  # once: the claims name the tenant, whose secret verifies
    client_key, tenant, is_session = _claim_tenant(parsed.claims)
    if tenant is None:
        raise _fail("unknown_tenant", "The token's tenant is not installed here.")
    try:
        claims = hs256.verify(parsed, tenant.shared_secret, leeway=leeway)
    except TokenError as err:
        if err.code != "bad_signature":
            raise
        # The cached row may predate a reinstall that another worker just committed.
        tenant = get_tenant(client_key, fresh=True)
        if tenant is None:
            raise
        claims = hs256.verify(parsed, tenant.shared_secret, leeway=leeway)
    if is_session:
        _remember(token, claims, tenant)
    return tenant, claims, is_session


def verify_token(
    request: HttpRequest,
    token: str,
    *,
    accept: frozenset[TokenKind] = ALL_KINDS,
    allow_uninstalled: bool = False,
) -> ConnectContext:
    leeway = float(connect_settings.JWT_LEEWAY)
    try:
        seen = _seen_before(token, leeway)
        if seen is not None:
            tenant, claims = seen
            is_session = True
        else:
            tenant, claims, is_session = _verify_in_full(token, leeway)
    except TokenError as err:
        raise _fail(err.code, err.message) from err

    if not tenant.installed and not allow_uninstalled:
        raise _fail("uninstalled_tenant", "The app is not installed for this tenant.")

    qsh = claims.get("qsh")
    if is_session:
        if qsh not in (None, CONTEXT_QSH):
            raise _fail("qsh_mismatch", "The token is not a session token.")
        kind = TokenKind.SESSION
    elif qsh == CONTEXT_QSH:
        kind = TokenKind.CONTEXT
    elif not isinstance(qsh, str) or not qsh:
        raise _fail("missing_claim", "The token has no 'qsh' claim.")
    else:
        if not request_qsh_matches(request, qsh):
            raise _fail("qsh_mismatch", "The token's qsh does not match this request.")
        kind = TokenKind.PAGE

    if kind not in accept:
        raise _fail(
            "context_token_not_allowed",
            "This endpoint needs a token signed for this exact request.",
        )
    return ConnectContext(tenant=tenant, claims=claims, kind=kind)


def authenticate_request(
    request: HttpRequest,
    *,
    accept: frozenset[TokenKind] = ALL_KINDS,
    allow_uninstalled: bool = False,
    header_only: bool = False,
) -> ConnectContext:
    token = extract_token(request, header_only=header_only)
    if token is None:
        raise _fail("missing_token", "The request carries no JWT.")
    return verify_token(request, token, accept=accept, allow_uninstalled=allow_uninstalled)
