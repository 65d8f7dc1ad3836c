"""Canonical request and query string hash (qsh), as Atlassian Connect defines them.

Written by hand because no maintained Python library implements the algorithm correctly:
``atlassian-jwt`` (PyPI) strips the context path as a plain string prefix and sorts repeated
values by their encoded form; the rules followed here are PROTOCOL.md section 2.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from urllib.parse import parse_qsl, quote, urlsplit

__all__ = [
    "CONTEXT_QSH",
    "canonical_query",
    "canonical_request",
    "canonical_request_from_url",
    "canonical_uri",
    "query_string_hash",
    "query_string_hash_from_url",
]

#: The literal qsh that host context JWTs (``AP.context.getToken()``) carry.
CONTEXT_QSH = "context-qsh"

QueryInput = str | Mapping[str, str | Iterable[str]] | Iterable[tuple[str, str]]


#: A value quote() would return unchanged (most names and values of a product's query).
_UNRESERVED = re.compile(r"[A-Za-z0-9._~-]*").fullmatch


def _encode(value: str) -> str:
    # RFC 3986: only A-Z a-z 0-9 - . _ ~ stay literal; quote() upper-cases the hex digits.
    # The regex check costs a tenth of quote(), which returns such a value unchanged.
    if _UNRESERVED(value):
        return value
    return quote(value, safe="~", encoding="utf-8", errors="strict")


def _normalise_base_path(base_path: str) -> str:
    base = base_path.strip()
    if base and not base.startswith("/"):
        base = "/" + base
    return base.rstrip("/")


def canonical_uri(path: str, base_path: str = "") -> str:
    """The path part of the canonical request.

    ``path`` is the raw (still percent-encoded) request path; ``base_path`` is the context
    path of the receiving side (the path of the app's baseUrl, or ``/wiki`` for Confluence).
    It is stripped only on a path-segment boundary: base ``/wiki`` leaves ``/wikipedia/x``.
    """
    base = _normalise_base_path(base_path)
    if base and (path == base or path.startswith(base + "/")):
        path = path[len(base) :]
    if not path:
        path = "/"
    if not path.startswith("/"):
        path = "/" + path
    path = path.replace("&", "%26")
    if len(path) > 1 and path.endswith("/"):
        path = path[:-1]
    return path


def _pairs(query: QueryInput) -> list[tuple[str, str]]:
    if isinstance(query, str):
        # Form decoding: '+' is a space, %XX is UTF-8. Undecodable bytes become U+FFFD, so a
        # hostile query still hashes (and simply fails to match) instead of raising.
        return parse_qsl(query, keep_blank_values=True, encoding="utf-8", errors="replace")
    if isinstance(query, Mapping):
        pairs: list[tuple[str, str]] = []
        for name, values in query.items():
            if isinstance(values, str):
                pairs.append((name, values))
            else:
                pairs.extend((name, v) for v in values)
        return pairs
    return list(query)


def _utf16_order(value: str) -> bytes:
    # Repeated values are sorted by their decoded form in UTF-16 code-unit order, as Java
    # (Collections.sort on String) and JS (Array.prototype.sort) do on the host side. It differs
    # from code-point order only between astral characters (surrogate pairs, 0xD800-0xDFFF) and
    # U+E000-U+FFFF, e.g. an emoji sorts before a fullwidth letter.
    return value.encode("utf-16-be", errors="surrogatepass")


def canonical_query(query: QueryInput) -> str:
    """The query part of the canonical request; the ``jwt`` parameter is left out."""
    grouped: dict[str, list[str]] = {}
    for name, value in _pairs(query):
        if name == "jwt":
            continue
        if name in grouped:
            grouped[name].append(value)
        else:
            grouped[name] = [value]
    entries = []
    for name, values in grouped.items():
        if len(values) > 1:
            values.sort(key=_utf16_order)
        entries.append((_encode(name), ",".join([_encode(v) for v in values])))
    entries.sort()
    return "&".join([f"{name}={value}" for name, value in entries])


def canonical_request(method: str, path: str, query: QueryInput = "", base_path: str = "") -> str:
    """``METHOD&URI&QUERY`` for a request."""
    return f"{method.upper()}&{canonical_uri(path, base_path)}&{canonical_query(query)}"


def canonical_request_from_url(method: str, url: str, base_path: str = "") -> str:
    """Canonical request for a full or relative URL (its fragment is ignored)."""
    parts = urlsplit(url)
    return canonical_request(method, parts.path, parts.query, base_path)


def query_string_hash(method: str, path: str, query: QueryInput = "", base_path: str = "") -> str:
    """The qsh claim: lower-case hex SHA-256 of the canonical request."""
    canonical = canonical_request(method, path, query, base_path)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def query_string_hash_from_url(method: str, url: str, base_path: str = "") -> str:
    canonical = canonical_request_from_url(method, url, base_path)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
