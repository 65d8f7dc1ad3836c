"""Calling the Django app's WSGI handler directly, as a server would, without a socket."""

from __future__ import annotations

import io
import sys
from typing import Any

from bench.harness import Req


def environ_for(req: Req) -> dict[str, Any]:
    path, _, query = req.path.partition("?")
    body = req.body.encode()
    env: dict[str, Any] = {
        "REQUEST_METHOD": req.method,
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "RAW_URI": req.path,  # what gunicorn passes; the qsh is computed over it
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "HTTP_HOST": "127.0.0.1:8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.version": (1, 0),
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "CONTENT_LENGTH": str(len(body)),
    }
    if req.body:
        env["CONTENT_TYPE"] = "application/json"
    if req.authorization:
        env["HTTP_AUTHORIZATION"] = req.authorization
    return env


class Caller:
    """Calls a WSGI application with a :class:`Req` and fails on a non-2xx answer."""

    def __init__(self, application: Any) -> None:
        self.application = application
        self.status = ""

    def _start_response(self, status: str, headers: list[tuple[str, str]], exc: Any = None) -> Any:
        self.status = status
        return lambda data: None

    def __call__(self, req: Req) -> str:
        result = self.application(environ_for(req), self._start_response)
        try:
            for _chunk in result:
                pass
        finally:
            close = getattr(result, "close", None)
            if close:
                close()
        if not self.status.startswith(("200", "204")):
            raise RuntimeError(f"{req.method} {req.path[:60]}: {self.status}")
        return self.status
