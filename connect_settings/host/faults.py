"""Faults on demand: the next N matching requests fail in a chosen way.

Faults are consumed in the order they were added; each matching request takes one from the
first fault that still has some left. They apply to the product REST API by default (any
path under ``{context path}/rest/``); ``path`` aims them elsewhere, e.g. at ``/keys/`` to
make the key server fail. The emulator's own control API is never faulted, so faults can
always be cleared.
"""

from __future__ import annotations

import copy
import threading
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["Fault", "FaultPlan"]

MAX_COUNT = 10_000
MAX_DELAY = 120.0
MAX_RETRY_AFTER = 3600


@dataclass
class Fault:
    """``status`` answers with that error; ``drop`` closes the connection without answering;
    ``delay`` (seconds) holds the answer back first, and alone delays a normal answer."""

    status: int | None = None
    count: int = 1
    retry_after: int | None = None
    delay: float = 0.0
    drop: bool = False
    path: str | None = None
    method: str | None = None
    remaining: int = 0

    def __post_init__(self) -> None:
        problems = self.problems()
        if problems:
            raise ValueError("; ".join(problems))
        if self.method:
            self.method = self.method.upper()
        self.remaining = self.count

    def problems(self) -> list[str]:
        out: list[str] = []
        if self.status is not None and (
            not isinstance(self.status, int) or not 400 <= self.status <= 599
        ):
            out.append("status must be an HTTP error status (400-599)")
        if self.status is not None and self.drop:
            out.append("choose either status or drop")
        if self.status is None and not self.drop and not self.delay:
            out.append("say what to do: status, drop or delay")
        if not isinstance(self.count, int) or not 1 <= self.count <= MAX_COUNT:
            out.append(f"count must be 1-{MAX_COUNT}")
        if not isinstance(self.delay, int | float) or not 0 <= self.delay <= MAX_DELAY:
            out.append(f"delay must be 0-{MAX_DELAY:g} seconds")
        if self.retry_after is not None and (
            not isinstance(self.retry_after, int) or not 0 <= self.retry_after <= MAX_RETRY_AFTER
        ):
            out.append(f"retry_after must be 0-{MAX_RETRY_AFTER} seconds")
        if self.path is not None and (
            not isinstance(self.path, str) or not self.path.startswith("/")
        ):
            out.append("path must be a path prefix starting with '/'")
        if self.method is not None and not isinstance(self.method, str):
            out.append("method must be a string")
        return out

    @classmethod
    def from_json(cls, data: object) -> Fault:
        """A fault from the control API's JSON; ValueError with a readable reason."""
        if not isinstance(data, dict):
            raise ValueError("the fault must be a JSON object")
        allowed = {"status", "count", "retry_after", "delay", "drop", "path", "method"}
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise ValueError(f"unknown fields {unknown}; known: {sorted(allowed)}")
        if "drop" in data and not isinstance(data["drop"], bool):
            raise ValueError("drop must be true or false")
        return cls(**data)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class FaultPlan:
    """The queue of faults; thread-safe."""

    def __init__(self, default_path: str) -> None:
        self.default_path = default_path
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        #: How many requests a fault was applied to, for tests and the admin page.
        self.applied = 0

    def add(self, fault: Fault) -> Fault:
        if fault.path is None:
            fault.path = self.default_path
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def active(self) -> list[Fault]:
        with self._lock:
            return [copy.copy(f) for f in self._faults]

    def take(self, method: str, path: str, *aliases: str) -> Fault | None:
        """The fault for this request, if any; uses up one of its count. ``aliases`` are other
        paths the same resource is known by (the Forge route's product path)."""
        paths = (path, *aliases)
        with self._lock:
            for fault in self._faults:
                if fault.method and fault.method != method.upper():
                    continue
                prefix = fault.path or self.default_path
                if not any(p.startswith(prefix) for p in paths):
                    continue
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._faults.remove(fault)
                self.applied += 1
                return fault
        return None
