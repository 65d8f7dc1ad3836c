"""A bounded mixed workload of client threads against the app, recording every answer.

Operations: signed page loads, configure saves (with and without a version; the mirrored
fields change, so every save also queues mirror deliveries), ``/api/settings`` reads and
descriptor fetches. Each thread stops at the deadline or after ``max_ops``; randomness is
seeded per thread, so a run's mix is repeatable.
"""

from __future__ import annotations

import json
import random
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from .rawhttp import Connection, Response

__all__ = ["Site", "Workload", "percentile", "verify_saves"]

JSON = ("Content-Type", "application/json")
PAGE = "/configure?lic=none&tz=UTC"


@dataclass
class Site:
    """A tenant as a workload sees it: its clientKey and current shared secret."""

    client_key: str
    secret: str


@dataclass
class Accepted:
    client_key: str
    version: int
    team_name: str


@dataclass
class Workload:
    base_url: str
    sites: list[Site]
    threads: int = 6
    seconds: float = 10.0
    max_ops: int = 100_000
    weights: dict[str, int] = field(
        default_factory=lambda: {"page": 4, "save": 3, "api": 2, "descriptor": 1}
    )
    statuses: Counter[int] = field(default_factory=Counter)
    by_op: dict[str, Counter[int]] = field(default_factory=dict)
    latencies: dict[str, list[float]] = field(default_factory=dict)
    accepted: list[Accepted] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    bad_503: list[str] = field(default_factory=list)
    timeline: list[tuple[float, str, int]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    started: float = 0.0

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        """Run to the deadline (or :meth:`stop`); returns when every thread has finished."""
        self.started = time.monotonic()
        workers = [
            threading.Thread(target=self._client, args=(i,), daemon=True)
            for i in range(self.threads)
        ]
        for w in workers:
            w.start()
        for w in workers:
            w.join(self.seconds + 60)  # each request has a 30 s timeout: bounded

    def _record(self, op: str, response: Response) -> None:
        with self._lock:
            self.statuses[response.status] += 1
            self.by_op.setdefault(op, Counter())[response.status] += 1
            self.latencies.setdefault(op, []).append(response.elapsed)
            self.timeline.append((time.monotonic() - self.started, op, response.status))
            if response.status == 0:
                self.errors.append(f"{op}: {response.error}")
            elif response.status == 503:
                data = response.json()
                code = data.get("error") if isinstance(data, dict) else None
                if code != "database_unavailable" or not response.header("Retry-After"):
                    self.bad_503.append(f"{op}: {response.body[:120]!r}")

    def _client(self, index: int) -> None:
        from connect_settings.testing import page_token

        from .world import session_token_for

        rng = random.Random(index)  # noqa: S311 - a repeatable mix, not security
        conn = Connection(self.base_url, timeout=30)
        ops = [op for op, weight in self.weights.items() for _ in range(weight)]
        versions: dict[str, int] = {}
        deadline = self.started + self.seconds
        n = 0
        try:
            while not self._stop.is_set() and time.monotonic() < deadline and n < self.max_ops:
                n += 1
                site = rng.choice(self.sites)
                op = rng.choice(ops)
                if op == "page":
                    token = page_token(site.client_key, site.secret, "GET", PAGE, base_path="")
                    response = conn.request("GET", f"{PAGE}&jwt={token}")
                    match = re.search(rb'"version": (\d+)', response.body)
                    if response.status == 200 and match:
                        versions[site.client_key] = int(match.group(1))
                elif op == "save":
                    team = f"w{index}-{n}"
                    values = {
                        "team_name": team,
                        "notify": rng.random() < 0.5,
                        "project_keys": rng.sample(["OPS", "SUP", "DEV", "QA"], rng.randint(0, 3)),
                    }
                    body: dict[str, Any] = {"values": values}
                    if rng.random() < 0.5 and site.client_key in versions:
                        body["version"] = versions[site.client_key]
                    token = session_token_for(site.client_key, site.secret)
                    response = conn.request(
                        "POST",
                        "/configure",
                        [JSON, ("Authorization", f"JWT {token}")],
                        json.dumps(body).encode(),
                    )
                    data = response.json() if response.status in (200, 409) else None
                    if response.status == 200 and isinstance(data, dict):
                        versions[site.client_key] = data["version"]
                        with self._lock:
                            self.accepted.append(Accepted(site.client_key, data["version"], team))
                    elif response.status == 409 and isinstance(data, dict):
                        versions[site.client_key] = data["current"]["version"]
                elif op == "api":
                    token = session_token_for(site.client_key, site.secret)
                    response = conn.request(
                        "GET", "/api/settings", [("Authorization", f"JWT {token}")]
                    )
                else:
                    response = conn.request("GET", "/atlassian-connect.json")
                self._record(op, response)
        finally:
            conn.close()

    # figures -------------------------------------------------------------------------------

    def five_xx(self, allow_503: bool = False) -> int:
        return sum(
            count
            for status, count in self.statuses.items()
            if status >= 500 and not (allow_503 and status == 503)
        )

    def figures(self) -> dict[str, Any]:
        total = sum(self.statuses.values())
        elapsed = max((t for t, _, _ in self.timeline), default=0.0) or 1.0
        out: dict[str, Any] = {
            "requests": total,
            "rps": round(total / elapsed, 1),
            "statuses": dict(sorted(self.statuses.items())),
        }
        for op, values in sorted(self.latencies.items()):
            out[f"{op}_p50_ms"] = round(percentile(values, 50) * 1000, 1)
            out[f"{op}_p95_ms"] = round(percentile(values, 95) * 1000, 1)
        return out


def percentile(values: list[float], pct: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))
    return ordered[index]


def verify_saves(accepted: list[Accepted]) -> list[str]:
    """Every accepted save has its history entry (same version, same value) and each tenant
    ends at the value of its highest accepted version; returns the problems."""
    from connect_settings import store
    from connect_settings.models import ConfigurationChange, Tenant

    problems: list[str] = []
    by_tenant: dict[str, list[Accepted]] = {}
    for save in accepted:
        by_tenant.setdefault(save.client_key, []).append(save)
    for client_key, saves in by_tenant.items():
        tenant = Tenant.objects.get(client_key=client_key)
        history = {
            change.version: change.changes
            for change in ConfigurationChange.objects.filter(tenant=tenant)
        }
        versions = [s.version for s in saves]
        if len(set(versions)) != len(versions):
            problems.append(f"{client_key}: two accepted saves answered the same version")
        for save in saves:
            changes = history.get(save.version)
            if changes is None:
                problems.append(f"{client_key}: accepted version {save.version} has no history")
            elif changes.get("team_name", {}).get("to") != save.team_name:
                problems.append(f"{client_key}: version {save.version} stored another value")
        last = max(saves, key=lambda s: s.version)
        stored = store.get("appSettings", client_key) or {}
        if max(history) == last.version and stored.get("team_name") != last.team_name:
            problems.append(f"{client_key}: the final value is not the last accepted save")
    return problems
