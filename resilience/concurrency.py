"""Concurrency: two admins save the same tenant's configuration at the same time, over and over.

Each admin sends the version it last saw (as the page does): a save lands (200, the next
version) or is refused (409, with the current version to retry from). Passes when every
answer is one of those two, each landed save has exactly one history entry holding its
value, versions are consecutive, each entry's "from" is the previous landed save's "to"
(no update lost or overwritten unseen) and the stored value is the last landed save's.
"""

from __future__ import annotations

import json
import threading
from collections import Counter

from .rawhttp import Connection
from .report import SuiteResult
from .stack import Stack
from .world import session_token_for

__all__ = ["run"]


def _admin(
    url: str,
    client_key: str,
    secret: str,
    name: str,
    saves: int,
    barrier: threading.Barrier,
    landed: list[tuple[int, str, str]],
    answers: Counter[int],
    lock: threading.Lock,
) -> None:
    conn = Connection(url, timeout=30)
    token = session_token_for(client_key, secret, account_id=f"557058:{name}")
    headers = [("Content-Type", "application/json"), ("Authorization", f"JWT {token}")]
    version = 1  # the seed save
    barrier.wait()
    try:
        for n in range(saves):
            value = f"{name}-{n}"
            body = json.dumps({"values": {"team_name": value}, "version": version}).encode()
            response = conn.request("POST", "/configure", headers, body)
            data = response.json()
            with lock:
                answers[response.status] += 1
                if response.status == 200:
                    landed.append((data["version"], value, name))
            if response.status == 200:
                version = data["version"]
            elif response.status == 409:
                version = data["current"]["version"]  # reload, as the page offers
    finally:
        conn.close()


def run(short: bool) -> SuiteResult:
    result = SuiteResult("concurrency", short)
    saves = 50  # each admin, per round
    rounds = 1 if short else 10
    with Stack("concurrency", emulators=1, gunicorn_workers=2, gunicorn_threads=4) as stack:
        from connect_settings import store
        from connect_settings.configuration import save_configuration
        from connect_settings.models import Configuration, ConfigurationChange, Tenant

        site = stack.sites[0]
        site.install(stack.url)
        tenant = Tenant.objects.get(client_key=site.client_key)
        answers_check = result.check("concurrency: every save lands (200) or is refused (409)")
        history_check = result.check("concurrency: one history entry per landed save, none lost")
        totals: Counter[int] = Counter()
        landed_total = 0
        for round_ in range(rounds):
            ConfigurationChange.objects.filter(tenant=tenant).delete()
            Configuration.objects.filter(tenant=tenant).delete()
            store.delete("appSettings", tenant.client_key)
            save_configuration(tenant, {"team_name": "seed"}, version=0, account_id="seed")
            landed: list[tuple[int, str, str]] = []
            answers: Counter[int] = Counter()
            lock = threading.Lock()
            barrier = threading.Barrier(2, timeout=30)
            threads = [
                threading.Thread(
                    target=_admin,
                    args=(
                        stack.url,
                        site.client_key,
                        site.shared_secret(),
                        name,
                        saves,
                        barrier,
                        landed,
                        answers,
                        lock,
                    ),
                )
                for name in ("alice", "bob")
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join(300)
            totals.update(answers)
            answers_check.expect(
                set(answers) <= {200, 409} and sum(answers.values()) == 2 * saves,
                f"round {round_}: answers {dict(answers)}",
            )
            history = {
                c.version: c
                for c in ConfigurationChange.objects.filter(tenant=tenant).exclude(
                    account_id="seed"
                )
            }
            landed.sort()
            versions = [v for v, _, _ in landed]
            problems: list[str] = []
            if versions != list(range(2, 2 + len(landed))):
                problems.append(f"landed versions not consecutive from 2: {versions[:10]}")
            if sorted(history) != versions:
                problems.append(
                    f"history versions {sorted(history)[:10]} != landed {versions[:10]}"
                )
            previous = "seed"
            for version, value, name in landed:
                change = history.get(version)
                if change is None:
                    continue
                team = change.changes.get("team_name", {})
                if team.get("to") != value or team.get("from") != previous:
                    problems.append(f"v{version}: {team} after {previous!r}, expected {value!r}")
                if change.account_id != f"557058:{name}":
                    problems.append(f"v{version}: recorded for {change.account_id}")
                previous = value
            final = (store.get("appSettings", tenant.client_key) or {}).get("team_name")
            if landed and final != landed[-1][1]:
                problems.append(f"stored {final!r}, last landed {landed[-1][1]!r}")
            history_check.expect(not problems, f"round {round_}: {'; '.join(problems[:4])}")
            landed_total += len(landed)
        answers_check.figures.update(
            rounds=rounds, saves_per_admin=saves, answers=dict(sorted(totals.items()))
        )
        history_check.figures.update(landed=landed_total, conflicts=totals[409])
    return result
