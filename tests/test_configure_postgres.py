"""Concurrent configure saves on a real PostgreSQL: the version check and the write are one
row-locked step, so two admins saving the same version cannot both win, and a save never
writes over what committed after it read."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from psycopg.pq import TransactionStatus

from connect_settings import store
from connect_settings.auth import mint_session_token
from connect_settings.configuration import ConfigurationConflict, save_configuration
from connect_settings.models import Configuration, ConfigurationChange
from connect_settings.testing import make_tenant, race

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _postgres_only() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: run with DATABASE_URL=postgres://... (CI does)")


def _race(workers: int, work: Callable[[int], Any]) -> list[Any]:
    results = race(workers, work)
    assert not any(isinstance(r, Exception) for r in results), results
    return results


def _save(token: str, values: dict[str, Any], version: int | None) -> tuple[int, Any]:
    body: dict[str, Any] = {"values": values}
    if version is not None:
        body["version"] = version
    response = Client().post(
        "/configure",
        data=json.dumps(body),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"JWT {token}",
    )
    return response.status_code, response.json()


def test_two_admins_saving_the_same_version_one_wins_one_gets_409():
    tenant = make_tenant()
    admins = [mint_session_token(tenant, f"admin-{i}") for i in range(2)]
    assert _save(admins[0], {"team_name": "Start"}, 0)[0] == 200

    results = _race(2, lambda i: _save(admins[i], {"team_name": f"Admin {i}"}, 1))

    statuses = sorted(status for status, _ in results)
    assert statuses == [200, 409], results
    winner = next(i for i, (status, _) in enumerate(results) if status == 200)
    loser_body = results[1 - winner][1]
    # The loser is told what is stored now: the winner's value, at version 2.
    assert loser_body["error"] == "conflict"
    assert loser_body["current"]["version"] == 2
    assert loser_body["current"]["values"]["team_name"] == f"Admin {winner}"
    assert store.get("appSettings", "test-client-key")["team_name"] == f"Admin {winner}"
    assert Configuration.objects.get().version == 2
    last = ConfigurationChange.objects.get(version=2)
    assert last.account_id == f"admin-{winner}"
    assert last.changes == {"team_name": {"from": "Start", "to": f"Admin {winner}"}}
    assert ConfigurationChange.objects.count() == 2


def test_many_saves_of_one_version_have_exactly_one_winner():
    tenant = make_tenant()
    token = mint_session_token(tenant, "admin")
    results = _race(8, lambda i: _save(token, {"results_per_page": 10 + i}, 0))
    statuses = [status for status, _ in results]
    assert statuses.count(200) == 1 and statuses.count(409) == 7, results
    winner = statuses.index(200)
    assert store.get("appSettings", "test-client-key")["results_per_page"] == 10 + winner
    assert list(ConfigurationChange.objects.values_list("version", flat=True)) == [1]


def test_saves_without_a_version_all_land_in_order_and_none_is_lost():
    tenant = make_tenant()
    token = mint_session_token(tenant, "api-client")
    # Each writer changes its own list item: with last-write-wins on the whole document a
    # lost update would show as a history entry whose "from" is not the previous "to".
    results = _race(8, lambda i: _save(token, {"project_keys": [f"P{i}"]}, None))
    assert [status for status, _ in results] == [200] * 8, results
    versions = sorted(body["version"] for _, body in results)
    assert versions == list(range(1, 9))
    changes = list(ConfigurationChange.objects.order_by("version"))
    assert [c.version for c in changes] == list(range(1, 9))
    previous: list[str] = []
    for change in changes:
        assert change.changes["project_keys"]["from"] == previous
        previous = change.changes["project_keys"]["to"]
    assert store.get("appSettings", "test-client-key")["project_keys"] == previous


def test_saves_queued_on_the_locked_rows_read_the_newest_values():
    """Eight saves racing on existing rows: a save whose write finds the rows changed since
    its read saves again, locking and reading both rows in one statement, and a save queued
    behind another must read the values that one committed (see
    configuration._both_rows_statement and _swap_statement), or a history entry's "from"
    would be stale."""
    tenant = make_tenant()
    token = mint_session_token(tenant, "api-client")
    assert _save(token, {"project_keys": ["P99"]}, None)[0] == 200
    results = _race(8, lambda i: _save(token, {"project_keys": [f"P{i}"]}, None))
    assert [status for status, _ in results] == [200] * 8, results
    changes = list(ConfigurationChange.objects.order_by("version"))
    assert [c.version for c in changes] == list(range(1, 10))
    previous = changes[0].changes["project_keys"]["to"]
    for change in changes[1:]:
        assert change.changes["project_keys"]["from"] == previous
        previous = change.changes["project_keys"]["to"]
    assert store.get("appSettings", "test-client-key")["project_keys"] == previous


def _after_the_read(write: Callable[[], None]) -> Any:
    """A query wrapper that runs ``write`` (committed at once: autocommit) just after the
    save's read of both rows, before its write: another writer coming in between."""
    done: list[bool] = []

    def wrapper(execute: Callable[..., Any], sql: str, *args: Any) -> Any:
        result = execute(sql, *args)
        if not done and sql.startswith('SELECT c."version"') and "FOR UPDATE" not in sql:
            done.append(True)
            write()
        return result

    return connection.execute_wrapper(wrapper)


def test_a_save_is_two_statements_and_no_transaction_of_its_own():
    """Outside a transaction a save reads, then checks and writes in one statement, each in
    autocommit (no BEGIN and COMMIT to wait for: see configuration._save_unlocked)."""
    tenant = make_tenant()
    save_configuration(tenant, {"team_name": "Ops"})  # the first save creates the rows
    seen: list[tuple[str, TransactionStatus]] = []

    def watch(execute: Callable[..., Any], sql: str, *args: Any) -> Any:
        seen.append((sql.split()[0], connection.connection.info.transaction_status))
        return execute(sql, *args)

    with connection.execute_wrapper(watch):
        result = save_configuration(tenant, {"team_name": "Platform"}, version=1)
    assert (result.version, result.changed) == (2, ["team_name"])
    assert seen == [("SELECT", TransactionStatus.IDLE), ("WITH", TransactionStatus.IDLE)]
    assert store.get("appSettings", tenant)["team_name"] == "Platform"
    change = ConfigurationChange.objects.get(version=2)
    assert change.changes == {"team_name": {"from": "Ops", "to": "Platform"}}


def test_a_value_written_after_the_read_is_kept():
    """store.set of the configuration's key between a save's read and its write: the write
    must not put back what was read (the check compares the stored value, not only the
    version, which store.set leaves alone); the save then reads again, rows locked."""
    tenant = make_tenant()
    save_configuration(tenant, {"team_name": "Ops", "project_keys": ["PA"]})

    def meanwhile() -> None:
        stored = store.get("appSettings", tenant)
        store.set("appSettings", {**stored, "project_keys": ["PB"], "legacy": 1}, tenant)

    with _after_the_read(meanwhile):
        result = save_configuration(tenant, {"team_name": "Platform"})
    assert result.version == 2
    stored = store.get("appSettings", tenant)
    assert (stored["team_name"], stored["project_keys"], stored["legacy"]) == (
        "Platform",
        ["PB"],
        1,
    )
    change = ConfigurationChange.objects.get(version=2)
    assert change.changes == {"team_name": {"from": "Ops", "to": "Platform"}}


def test_a_save_committed_after_the_read_is_not_overwritten():
    tenant = make_tenant()
    save_configuration(tenant, {"project_keys": ["PA"]})

    def other_save() -> None:
        save_configuration(tenant, {"project_keys": ["PB"]}, account_id="other")

    # Without a version: it lands after the other save, and its history starts from it.
    with _after_the_read(other_save):
        result = save_configuration(tenant, {"project_keys": ["PC"]}, account_id="me")
    assert result.version == 3
    changes = list(
        ConfigurationChange.objects.order_by("version").values_list("changes", "account_id")
    )
    assert changes[1:] == [
        ({"project_keys": {"from": ["PA"], "to": ["PB"]}}, "other"),
        ({"project_keys": {"from": ["PB"], "to": ["PC"]}}, "me"),
    ]
    # With the version it read: a conflict, and nothing of it is stored.
    with _after_the_read(other_save), pytest.raises(ConfigurationConflict) as conflict:
        save_configuration(tenant, {"project_keys": ["PD"]}, version=3)
    assert conflict.value.current["version"] == 4
    assert store.get("appSettings", tenant)["project_keys"] == ["PB"]
    assert Configuration.objects.get().version == 4


def test_a_value_changed_and_changed_back_after_the_read_still_conflicts():
    """Two saves between the read and the write that leave the value as it was read (A, B,
    A): the version tells, so a save made against the version it read gets a conflict."""
    tenant = make_tenant()
    save_configuration(tenant, {"team_name": "A"})

    def two_saves() -> None:
        save_configuration(tenant, {"team_name": "B"})
        save_configuration(tenant, {"team_name": "A"})

    with _after_the_read(two_saves), pytest.raises(ConfigurationConflict) as conflict:
        save_configuration(tenant, {"team_name": "C"}, version=1)
    assert conflict.value.current["version"] == 3
    assert store.get("appSettings", tenant)["team_name"] == "A"
    assert list(ConfigurationChange.objects.values_list("version", flat=True)) == [3, 2, 1]
