"""A clean 503 instead of a 500 (and a traceback) while the database is unreachable.

Add ``connect_settings.db_errors.DatabaseUnavailableMiddleware`` first in ``MIDDLEWARE``.
While PostgreSQL restarts (or the network to it fails) every request that needs the database
is answered ``503 {"error": "database_unavailable", "message": ...}`` with ``Retry-After``;
nothing needs restarting afterwards, since Django opens a new connection per request
(``CONN_MAX_AGE = 0``; with persistent connections set ``CONN_HEALTH_CHECKS = True``). A save
is one transaction, so a failed one leaves nothing half-written.

Two ways in, because Django turns an exception into a 500 at the layer that raised it:

- from a view: ``process_exception`` answers 503 directly;
- from another middleware (the tenant lookup in ``ConnectMiddleware.process_view``, the
  session save in ``SessionMiddleware``): Django has already made a 500 of it and sent
  ``got_request_exception``; a receiver marks the request, and ``process_response`` (this
  middleware being the outermost) replaces that 500 with the 503.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from django.core.signals import got_request_exception
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponseBase
from django.utils.deprecation import MiddlewareMixin

from .responses import error_response

__all__ = ["DATABASE_ERRORS", "DatabaseUnavailableMiddleware", "database_unavailable_response"]

logger = logging.getLogger("connect_settings.db_errors")

#: Django's wrappers of the driver errors raised when the server cannot be reached, a
#: connection died mid-request, or the server refused to go on (deadlock, shutdown): all of
#: them transient from the caller's point of view.
DATABASE_ERRORS: tuple[type[Exception], ...] = (OperationalError, InterfaceError)

_MARK = "_connect_database_unavailable"


def database_unavailable_response() -> HttpResponseBase:
    """``503 database_unavailable`` with ``Retry-After`` (never the driver's message: it can
    name hosts and users)."""
    response = error_response(
        "database_unavailable",
        "The database is unavailable at the moment; nothing was changed. Retry shortly.",
        503,
    )
    response["Cache-Control"] = "no-store"
    return response


def _mark_request(sender: Any, request: HttpRequest | None = None, **kwargs: Any) -> None:
    # Sent from inside Django's `except` block, so the exception is the one being handled.
    error = sys.exc_info()[1]
    if request is not None and isinstance(error, DATABASE_ERRORS):
        setattr(request, _MARK, True)


got_request_exception.connect(_mark_request, dispatch_uid="connect_settings.db_errors")


class DatabaseUnavailableMiddleware(MiddlewareMixin):
    """Answers 503 instead of 500 when the database cannot be used; put it first."""

    def process_exception(
        self, request: HttpRequest, exception: Exception
    ) -> HttpResponseBase | None:
        if not isinstance(exception, DATABASE_ERRORS):
            return None
        logger.warning(
            "Database unavailable during %s %s: %s",
            request.method,
            request.path,
            type(exception).__name__,
        )
        return database_unavailable_response()

    def process_response(
        self, request: HttpRequest, response: HttpResponseBase
    ) -> HttpResponseBase:
        if response.status_code >= 500 and getattr(request, _MARK, False):
            return database_unavailable_response()
        return response
