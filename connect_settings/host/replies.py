"""The emulator's HTTP answers as plain values, so the logic behind them stays testable."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Reply", "error", "json_reply"]


@dataclass
class Reply:
    status: int
    body: bytes = b""
    content_type: str = "application/json;charset=UTF-8"
    headers: dict[str, str] = field(default_factory=dict)


def json_reply(status: int, data: Any, headers: dict[str, str] | None = None) -> Reply:
    return Reply(status, json.dumps(data).encode("utf-8"), headers=dict(headers or {}))


def error(status: int, message: str, headers: dict[str, str] | None = None) -> Reply:
    """The product's error shape: ``{"message", "statusCode"}``."""
    return json_reply(status, {"message": message, "statusCode": status}, headers)
