"""Whether a Redis answers on 127.0.0.1:6379 (the tenant cache tests use it when it does)."""

from __future__ import annotations

import importlib.util
import socket


def redis_answers() -> bool:
    if importlib.util.find_spec("redis") is None:  # Django's Redis cache needs redis-py
        return False
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False
