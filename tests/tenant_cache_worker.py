"""A second worker for test_tenant_cache.py: one client key per input line, one JSON answer
(``state <client key>``: that tenant's configure-page state).

Runs the demo project's settings on the test's database and shared cache (given as JSON in
the environment), and looks tenants up exactly as a request would.
"""

from __future__ import annotations

import json
import os
import sys


def main() -> None:
    import django
    from django.conf import settings

    django.setup()
    db = json.loads(os.environ["WORKER_DATABASE"])
    settings.DATABASES["default"].update(db, ENGINE="django.db.backends.postgresql")
    settings.CACHES = {**settings.CACHES, "tenants": json.loads(os.environ["WORKER_CACHE"])}
    settings.CONNECT_SETTINGS = {
        **settings.CONNECT_SETTINGS,
        "TENANT_CACHE": "tenants",
        "SECRET_KEYS": json.loads(os.environ["WORKER_SECRET_KEYS"]),
    }

    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from connect_settings.configure_page import read_state
    from connect_settings.exceptions import SecretDecryptionError
    from connect_settings.tenants import _local, get_tenant

    for line in sys.stdin:
        client_key = line.strip()
        if client_key.startswith("state "):  # the configure page's state, as a page reads it
            tenant = get_tenant(client_key.removeprefix("state "))
            assert tenant is not None
            with CaptureQueriesContext(connection) as queries:
                state = read_state(tenant)
            state_answer = {
                "stored": state.stored,
                "version": state.version,
                "queries": len(queries.captured_queries),
            }
            print(json.dumps(state_answer), flush=True)
            continue
        with CaptureQueriesContext(connection) as queries:
            tenant = get_tenant(client_key)
        if tenant is None:
            answer = None
        else:
            try:
                secret: str | None = tenant.shared_secret
            except SecretDecryptionError:
                secret = None  # rotated to a key this worker was not given
            answer = {
                "ciphertext": tenant.shared_secret_encrypted,
                "secret": secret,
                "installed": tenant.installed,
                "enabled": tenant.enabled,
                "queries": len(queries.captured_queries),
                # This process's own copies (kept only with Redis, see tenants.py).
                "local_copies": len(_local.entries),
            }
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main()
