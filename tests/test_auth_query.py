"""The page qsh is computed from Django's parse of the query (``request.GET``), which the view
reads anyway, instead of parsing ``QUERY_STRING`` a second time: both must give the same
canonical query for any query string, hostile ones included."""

from __future__ import annotations

import io
from typing import Any

from django.core.handlers.wsgi import WSGIRequest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from connect_settings.auth import _query_pairs
from connect_settings.jwt.canonical import canonical_query


def wsgi_request(query: str) -> WSGIRequest:
    environ: dict[str, Any] = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/configure",
        # WSGI hands the raw bytes over as latin-1 text, as gunicorn does.
        "QUERY_STRING": query,
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.url_scheme": "http",
    }
    return WSGIRequest(environ)


query_chars = st.sampled_from([*"ab=&+%;_-.~ /?#", "%20", "%2B", "%26", "%3D", "%E2%98%83"])
query_chars |= st.sampled_from(["%FF", "%C3", "%", "%zz", "jwt=x", "\u00e9", "\u00ff"])


@settings(max_examples=400, deadline=None)
@given(st.lists(query_chars, max_size=30).map("".join))
@example("lic=none&tz=Europe%2FParis&b=2&b=1&jwt=abc")
@example("a=%FF%FE&a=%C3%A9&a=%E2%98%83&=empty&novalue&x=1+2")
@example("&&a=1&&")
def test_django_parse_gives_the_same_canonical_query(query: str) -> None:
    request = wsgi_request(query)
    pairs = _query_pairs(request)
    assert isinstance(pairs, list)  # the UTF-8 path was taken
    assert canonical_query(pairs) == canonical_query(query)


def test_another_charset_parses_the_raw_query(settings: Any) -> None:
    settings.DEFAULT_CHARSET = "latin-1"
    request = wsgi_request("a=%E9")
    assert _query_pairs(request) == "a=%E9"
