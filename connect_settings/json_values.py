"""Comparing stored JSON values the way JSON sees them."""

from __future__ import annotations

import json
from typing import Any


def same_json(a: Any, b: Any) -> bool:
    """Equal as JSON documents: unlike ``==``, ``1`` and ``true`` (or ``1`` and ``1.0``) differ."""
    if a is b:
        return True
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
