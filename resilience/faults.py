"""Faults: PostgreSQL restarted under load, a failing host during mirroring, a mirroring worker
killed mid-delivery, the key server down during an install, ``disabled`` and ``uninstalled``
at the same moment. One stack (one gunicorn worker process, so a cached install key is the
one every request sees), five emulated sites, a supervised ``db_worker``.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from .rawhttp import Connection, request
from .report import Check, SuiteResult
from .stack import Stack, poll
from .workload import Site, Workload, verify_saves
from .world import session_token_for

__all__ = ["run"]

LEASE_SECONDS = 3.0


def _save(stack: Stack, site: Any, values: dict[str, Any]) -> int:
    token = session_token_for(site.client_key, site.shared_secret())
    response = request(
        stack.url,
        "POST",
        "/configure",
        [("Content-Type", "application/json"), ("Authorization", f"JWT {token}")],
        json.dumps({"values": values}).encode(),
    )
    return response.status


def _entries_synced(client_key: str) -> bool:
    from connect_settings.models import MirrorEntry

    entries = MirrorEntry.objects.filter(tenant__client_key=client_key)
    return entries.exists() and not entries.exclude(status=MirrorEntry.Status.SYNCED).exists()


def postgres_restart(stack: Stack, site: Any, check: Check, short: bool) -> None:
    """Restart PostgreSQL in the middle of a workload: 503s while it is down, then 200s."""
    assert stack.pg is not None
    if reason := stack.pg.can_restart():
        check.skipped = reason
        return
    gunicorn_pid = stack.gunicorn.proc.pid if stack.gunicorn and stack.gunicorn.proc else None
    workload = Workload(
        stack.url,
        [Site(site.client_key, site.shared_secret())],
        threads=4,
        seconds=60.0,
        weights={"page": 2, "save": 2, "api": 1},
    )
    runner = threading.Thread(target=workload.run, daemon=True)
    runner.start()
    down_at = up_at = 0.0
    try:
        poll(lambda: sum(workload.statuses.values()) >= 40, 30)
        down_at = time.monotonic() - workload.started
        stack.pg.stop()
        # Down until the app has answered a few requests without it (bounded).
        stopped = time.monotonic()
        poll(
            lambda: (
                workload.statuses[503] >= (10 if short else 40)
                and time.monotonic() - stopped >= (1.0 if short else 5.0)
            ),
            30,
        )
        stack.pg.start()
        up_at = time.monotonic() - workload.started
        target = workload.statuses[200] + 60
        poll(lambda: workload.statuses[200] >= target, 30)
    finally:
        if not stack.pg.is_up():
            stack.pg.start()  # always started again, whatever failed
        workload.stop()
        runner.join(90)
    stack.close_db()
    check.expect(workload.five_xx(allow_503=True) == 0, f"5xx other than 503: {workload.statuses}")
    check.expect(not workload.errors, f"connection errors: {workload.errors[:3]}")
    check.expect(workload.statuses[503] > 0, "no request was answered 503 while it was down")
    check.expect(not workload.bad_503, f"503 not database_unavailable JSON: {workload.bad_503[:3]}")
    after = [s for t, _, s in workload.timeline if t > up_at]
    check.expect(bool(after) and after.count(200) > 0, "nothing succeeded after the restart")
    recovered = next((t for t, _, s in workload.timeline if t > up_at and s == 200), None)
    problems = verify_saves(workload.accepted)
    check.expect(not problems, "; ".join(problems[:3]))
    same = stack.gunicorn is not None and stack.gunicorn.proc is not None
    check.expect(
        same and stack.gunicorn.proc.pid == gunicorn_pid and stack.gunicorn.alive,  # type: ignore[union-attr]
        "gunicorn had to be restarted",
    )
    check.figures.update(
        postgres=stack.pg.kind,
        down_s=round(up_at - down_at, 2),
        answered_503=workload.statuses[503],
        first_200_after_start_s=round(recovered - up_at, 2) if recovered else None,
        requests=sum(workload.statuses.values()),
        accepted_saves=len(workload.accepted),
        worker_restarts=stack.worker_restarts,
    )


def host_faults(stack: Stack, site: Any, check: Check) -> None:
    """The host answers 429 / 5xx / times out / drops / refuses connections during mirroring:
    after recovery every change is on the host and ``connect_mirror --check`` is clean."""
    faults: list[tuple[str, dict[str, Any]]] = [
        ("429 Retry-After 1", {"status": 429, "retry_after": 1, "count": 2}),
        ("500", {"status": 500, "count": 3}),
        ("503", {"status": 503, "count": 3}),
        ("dropped connection", {"drop": True, "count": 3}),
        # HTTP_TIMEOUT is 2 s. The host applies each held PUT once it answers, late: last, so
        # that those late writes (of this same value) land before the next change, which is
        # made while the host is down (stopping it releases them).
        ("timeout", {"delay": 3.0, "count": 2}),
    ]
    outcomes: dict[str, str] = {}
    for n, (label, options) in enumerate(faults):
        site.add_fault(method="PUT", **options)
        projects = [f"P{n}A", f"P{n}B"][: 1 + n % 2]
        status = _save(stack, site, {"notify": n % 2 == 0, "project_keys": projects})
        synced = poll(
            lambda p=projects: (
                _entries_synced(site.client_key) and site.properties().get("projects") == p
            ),
            60,
            0.2,
        )
        properties = site.properties()
        ok = status == 200 and bool(synced)
        outcomes[label] = "recovered" if ok else f"save {status}, host {properties}"
        check.record(ok, f"{label}: {outcomes[label]}")
        site.clear_faults()
    # Refused connections: the host is down (its port closed) during the save. Stopping the
    # emulator closes its listener but not the keep-alive connections it is serving, so those
    # are dropped first: every new attempt then meets a closed port.
    site.add_fault(drop=True, count=50)
    site.stop()
    try:
        status = _save(stack, site, {"notify": False, "project_keys": ["DOWN"]})

        def attempted() -> bool:
            from connect_settings.models import MirrorEntry

            return MirrorEntry.objects.filter(
                tenant__client_key=site.client_key, attempts__gte=1
            ).exists()

        failed_while_down = bool(poll(attempted, 30, 0.2))
    finally:
        site.start()
        site.clear_faults()
    synced = poll(
        lambda: _entries_synced(site.client_key) and site.properties().get("projects") == ["DOWN"],
        60,
        0.2,
    )
    ok = status == 200 and failed_while_down and bool(synced)
    outcomes["connection refused"] = (
        "recovered"
        if ok
        else f"save {status}, failed while down {failed_while_down}, host {site.properties()}"
    )
    check.record(ok, f"connection refused: {outcomes['connection refused']}")
    code, output = stack.manage("connect_mirror", "--check", "--tenant", site.client_key)
    check.expect(code == 0, f"connect_mirror --check exited {code}: {output[-400:]}")
    check.figures.update(faults=len(outcomes), recovered=list(outcomes.values()).count("recovered"))


def worker_killed(stack: Stack, site: Any, check: Check) -> None:
    """SIGKILL the worker while the host holds its PUT; a newer save arrives meanwhile; after a
    restart (and the lease) the host ends at the newest value."""
    from connect_settings.models import MirrorEntry

    worker = stack.workers[0]
    fault = site.add_fault(delay=30.0, method="PUT", count=1)
    status = _save(stack, site, {"notify": True, "project_keys": ["KILL"]})
    in_flight = poll(lambda: fault.remaining == 0, 30, 0.05)
    check.expect(status == 200 and bool(in_flight), "the delivery never reached the host")
    worker.kill()
    killed_at = time.monotonic()
    site.clear_faults()
    newest = ["KILL", "NEWER"]
    status = _save(stack, site, {"notify": False, "project_keys": newest})
    check.expect(status == 200, f"save after the kill: {status}")
    worker.start()
    synced = poll(
        lambda: _entries_synced(site.client_key) and site.properties().get("projects") == newest,
        LEASE_SECONDS + 45,
        0.2,
    )
    delivered_after = time.monotonic() - killed_at
    entries = list(
        MirrorEntry.objects.filter(tenant__client_key=site.client_key).values_list(
            "property_key", "status", "version", "delivered_version", "leased_until"
        )
    )
    check.expect(bool(synced), f"not delivered after the restart: {entries}, {site.properties()}")
    check.figures.update(
        lease_s=LEASE_SECONDS,
        delivered_after_kill_s=round(delivered_after, 1),
        host=site.properties().get("projects"),
    )


def key_server_down(stack: Stack, site: Any, check: Check) -> None:
    """No key server answers during a first install: 503, nothing stored; it succeeds on retry;
    with the key cached, a reinstall works while the key server is down again."""
    from connect_settings.host import InstallError
    from connect_settings.models import Tenant

    site.add_fault(503, path="/keys/", count=1000)
    try:
        site.install(stack.url)
        first = 204
    except InstallError as err:
        first = err.status or 0
    stored = Tenant.objects.filter(client_key=site.client_key).exists()
    check.expect(first == 503 and not stored, f"install with the key server down: {first}")
    site.clear_faults()
    site.install(stack.url)
    check.expect(
        Tenant.objects.filter(client_key=site.client_key, installed=True).exists(),
        "the retried install did not store the tenant",
    )
    site.add_fault(drop=True, path="/keys/", count=1000)
    try:
        site.reinstall()
        again = 204
    except InstallError as err:
        again = err.status or 0
    site.clear_faults()
    tenant = Tenant.objects.get(client_key=site.client_key)
    check.expect(
        again == 204 and tenant.shared_secret == site.shared_secret(),
        f"reinstall with the key cached and the key server down: {again}",
    )
    check.figures.update(first_install=first, retry="204", reinstall_key_server_down=again)


def _simultaneous(
    url: str, order: list[str], tokens: dict[str, str], body: bytes
) -> dict[str, int]:
    """POST ``order[0]``, and ``order[1]`` as soon as the first is on the wire (before its
    answer): both in flight at once, in that order."""
    first_sent = threading.Event()
    answers: dict[str, int] = {}

    def send(event: str, first: bool) -> None:
        conn = Connection(url, timeout=30)
        headers = [("Content-Type", "application/json"), ("Authorization", f"JWT {tokens[event]}")]
        if not first:
            first_sent.wait(10)
        response = conn.request(
            "POST", f"/{event}", headers, body, sent=first_sent if first else None
        )
        answers[event] = response.status
        conn.close()

    threads = [
        threading.Thread(target=send, args=(order[0], True)),
        threading.Thread(target=send, args=(order[1], False)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return answers


def disabled_uninstalled_race(stack: Stack, site: Any, check: Check, rounds: int) -> None:
    """``disabled`` and ``uninstalled`` at the same moment, each order ``rounds / 2`` times."""
    from connect_settings.host.tokens import lifecycle_token, signed_install_token
    from connect_settings.models import Tenant
    from connect_settings.testing import page_token

    statuses: dict[int, int] = {}
    for i in range(rounds):
        site.install(stack.url)  # (re)installed and enabled, with a new secret
        secret = site.shared_secret()
        key = site.client_key
        body = json.dumps({"clientKey": key, "key": site.installation().key}).encode()

        def token(event: str, key: str = key, secret: str = secret) -> str:
            url = f"{stack.url}/{event}"
            if event == "uninstalled":
                return signed_install_token(
                    site.state.private_key,
                    site.kid,
                    client_key=key,
                    descriptor_base_url=stack.url,
                    callback_url=url,
                )
            return lifecycle_token(
                secret, client_key=key, descriptor_base_url=stack.url, callback_url=url
            )

        order = ["disabled", "uninstalled"] if i % 2 == 0 else ["uninstalled", "disabled"]
        answers = _simultaneous(stack.url, order, {e: token(e) for e in order}, body)
        for status in answers.values():
            statuses[status] = statuses.get(status, 0) + 1
        tenant = Tenant.objects.get(client_key=key)
        page = "/configure?lic=none"
        probe = request(
            stack.url, "GET", f"{page}&jwt={page_token(key, secret, 'GET', page, base_path='')}"
        )
        ok = (
            answers == {"disabled": 204, "uninstalled": 204}
            and not tenant.installed
            and not tenant.enabled
            and tenant.uninstalled_at is not None
            and probe.status == 401
        )
        check.record(
            ok,
            f"round {i} ({' then '.join(order)}): answers {answers}, installed={tenant.installed}, "
            f"enabled={tenant.enabled}, page {probe.status}",
        )
        # The emulator still believes it is installed: its next install() is a reinstall.
    check.figures.update(rounds=rounds, answers=statuses)


def run(short: bool) -> SuiteResult:
    result = SuiteResult("faults", short)
    env = {"RESILIENCE_MIRROR_LEASE_SECONDS": str(LEASE_SECONDS)}
    with Stack(
        "faults", emulators=5, gunicorn_workers=1, gunicorn_threads=8, db_workers=1, env_extra=env
    ) as stack:
        restart_site, host_site, kill_site, key_site, race_site = stack.sites
        for site in (restart_site, host_site, kill_site, race_site):
            site.install(stack.url)
        postgres_restart(
            stack, restart_site, result.check("faults: PostgreSQL restarted under load"), short
        )
        host_faults(
            stack,
            host_site,
            result.check("faults: host 429/5xx/timeout/drop/refused while mirroring"),
        )
        worker_killed(
            stack, kill_site, result.check("faults: mirroring worker killed mid-delivery")
        )
        key_server_down(stack, key_site, result.check("faults: key server down during an install"))
        disabled_uninstalled_race(
            stack,
            race_site,
            result.check("faults: disabled + uninstalled at once, both orders"),
            20 if short else 100,
        )
    return result
