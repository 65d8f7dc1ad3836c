"""``connect_import_ace``: ACE's sequelize store in, tenants and settings out.

Two kinds of source database: hand-written SQLite tables shaped exactly like the one ACE
11.5.3 creates (for broken rows that ACE would not write itself), and databases written by
ACE's own store API from npm, on SQLite and on PostgreSQL (marked ``node``).
"""

from __future__ import annotations

import json
import os
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, connection
from django.db.models.query import QuerySet
from django.test import Client
from django.utils import timezone

from connect_settings import signals, store
from connect_settings.ace_import import importer as importer_module
from connect_settings.ace_import.importer import Importer, ImportOptions, json_equal
from connect_settings.ace_import.rows import RowError, decode_value
from connect_settings.ace_import.source import AceSource, SourceError, redact
from connect_settings.lifecycle import PAYLOAD_FIELDS
from connect_settings.models import AddonSetting, Tenant
from connect_settings.tenants import get_tenant
from connect_settings.testing import install_payload, make_tenant, page_token
from tests.ace_support import ACE_VERSION, AceStore, install_ace, scratch_postgres_database
from tests.node_support import unavailable

pytestmark = pytest.mark.django_db

SECRET_A = "ace-secret-A-0123456789-abcdefghijklmnopqrstuvwxyz-XYZ"
SECRET_B = "ace-secret-B-0123456789-abcdefghijklmnopqrstuvwxyz-XYZ"
SECRET_NEW = "ace-secret-reinstalled-0123456789-abcdefghijklmnopqrs"
SECRET_HERE = "secret-from-a-reinstall-here-0123456789-abcdefghijk"
PAGE = "/configure?lic=none&xdm_e=https%3A%2F%2Fa.atlassian.net&cp="

# The table exactly as ACE 11.5.3's sequelize adapter creates it on SQLite (checked against
# the node tests below): no timestamps, a non-unique (clientKey, key) index.
ACE_SQLITE_DDL = (
    "CREATE TABLE `AddonSettings` (`id` INTEGER PRIMARY KEY AUTOINCREMENT, "
    "`clientKey` VARCHAR(255), `key` VARCHAR(255), `val` JSON{stamps})",
    "CREATE INDEX `addon_settings_client_key_key` ON `AddonSettings` (`clientKey`, `key`)",
)
STAMPS = ", `createdAt` DATETIME NOT NULL, `updatedAt` DATETIME NOT NULL"


# --- helpers ------------------------------------------------------------------------------


class AceDb:
    """A hand-written ACE store on SQLite; values are written as sequelize writes them."""

    def __init__(self, path: Path, *, timestamps: bool = False) -> None:
        self.path = path
        self.timestamps = timestamps
        with sqlite3.connect(path) as conn:
            conn.execute(ACE_SQLITE_DDL[0].format(stamps=STAMPS if timestamps else ""))
            conn.execute(ACE_SQLITE_DDL[1])

    @property
    def url(self) -> str:
        return f"sqlite:///{self.path}"  # path is absolute: sqlite:////tmp/...

    def raw(self, client_key: Any, key: Any, val: Any, *, at: datetime | None = None) -> int:
        """Insert ``val`` as stored (text, number, NULL); ``at`` sets both timestamps."""
        columns, values = ["clientKey", "key", "val"], [client_key, key, val]
        if self.timestamps:
            # sequelize's SQLite DATE text, e.g. 2024-01-02 03:04:05.678 +00:00
            stamp = (at or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " +00:00"
            columns += ["createdAt", "updatedAt"]
            values += [stamp, stamp]
        marks = ", ".join("?" for _ in values)
        names = ", ".join(f"`{c}`" for c in columns)
        with sqlite3.connect(self.path) as conn:
            cursor = conn.execute(f"INSERT INTO `AddonSettings` ({names}) VALUES ({marks})", values)
            return int(cursor.lastrowid or 0)

    def set(self, client_key: str, key: str, value: Any, **kw: Any) -> int:
        return self.raw(client_key, key, json.dumps(value), **kw)

    def install(
        self, client_key: str, secret: str, *, at: datetime | None = None, **overrides: Any
    ) -> int:
        payload = install_payload(client_key, sharedSecret=secret, **overrides)
        return self.set(client_key, "clientInfo", payload, at=at)

    def update(self, row_id: int, value: Any) -> None:
        with sqlite3.connect(self.path) as conn:
            conn.execute("UPDATE `AddonSettings` SET `val` = ? WHERE `id` = ?", (value, row_id))


@dataclass
class Run:
    out: str
    err: str
    error: CommandError | None

    @property
    def text(self) -> str:
        return self.out + self.err + (str(self.error) if self.error else "")


def run_import(url: str, *args: str, verbosity: int = 1) -> Run:
    out, err = StringIO(), StringIO()
    try:
        call_command(
            "connect_import_ace",
            "--database-url",
            url,
            *args,
            verbosity=verbosity,
            stdout=out,
            stderr=err,
        )
        error = None
    except CommandError as exc:
        error = exc
    return Run(out.getvalue(), err.getvalue(), error)


def page_status(client_key: str, secret: str) -> int:
    token = page_token(client_key, secret, "GET", PAGE)
    return Client().get(f"{PAGE}&jwt={token}").status_code


def snapshot() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    return (
        list(Tenant.objects.order_by("pk").values()),
        list(AddonSetting.objects.order_by("pk").values()),
    )


def settings_of(client_key: str) -> dict[str, Any]:
    return store.all(client_key)


def report_line(out: str, row_id: int) -> str:
    """The one line of the report's tables that is about row ``row_id``."""
    rows = [line for line in out.splitlines() if line.startswith("  ")]
    lines = [line for line in rows if line.split()[:1] == [str(row_id)]]
    assert len(lines) == 1, (row_id, out)
    return lines[0]


def table_row(out: str, label: str) -> list[int]:
    """The summary table's counts for ``tenants`` or ``settings``."""
    (line,) = [line for line in out.splitlines() if line.split()[:1] == [label]]
    return [int(n) for n in line.split()[1:]]


@pytest.fixture
def ace(tmp_path: Path) -> AceDb:
    return AceDb(tmp_path / "ace.sqlite")


@pytest.fixture
def ace_stamped(tmp_path: Path) -> AceDb:
    return AceDb(tmp_path / "ace-stamped.sqlite", timestamps=True)


# --- decoding, the way ACE reads values back ------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ('{"a": [1, 2]}', {"a": [1, 2]}),
        ('"plain"', "plain"),
        ('"{\\"a\\":1}"', {"a": 1}),  # JSON.stringify(obj) stored: getAsObject parses it
        ('"123"', 123),  # the same rule, as JSON.parse does in ACE
        (5, 5),  # SQLite's NUMERIC affinity stored the JSON text 5 as an integer
        (1.5, 1.5),
        (None, None),  # SQL NULL: ACE stored null
        (b'{"b": true}', {"b": True}),
        ("null", None),
    ],
)
def test_values_decode_as_ace_reads_them(raw, expected):
    assert json_equal(decode_value(raw), expected)


@pytest.mark.parametrize(
    "raw", ["{not json", "hello world", "NaN", '{"x": Infinity}', float("inf"), b"\xff\xfe"]
)
def test_unreadable_values_are_errors_without_their_content(raw):
    with pytest.raises(RowError, match="invalid JSON") as info:
        decode_value(raw)
    assert "hello" not in str(info.value) and "not json" not in str(info.value)


def test_json_equal_tells_booleans_from_numbers():
    assert json_equal({"a": [1, {"b": 1e21}]}, {"a": [1.0, {"b": 10**21}]})
    assert not json_equal(True, 1)
    assert not json_equal({"a": 1}, {"a": 1, "b": 2})
    assert not json_equal("1", 1)


def test_redact_hides_the_password():
    assert redact("postgres://ace:s3cr3t@db.example.com:5433/ace?sslmode=require") == (
        "postgres://ace:***@db.example.com:5433/ace?sslmode=require"
    )
    assert redact("postgresql:///ace?host=/run/pg&password=s3cr3t&sslmode=disable") == (
        "postgresql:///ace?host=/run/pg&password=***&sslmode=disable"
    )
    assert redact("postgres://ace@db/ace") == "postgres://ace@db/ace"
    assert redact("sqlite:////tmp/x.sqlite") == "sqlite:////tmp/x.sqlite"


def test_driver_messages_never_echo_the_password():
    # libpq quotes the malformed token it could not parse: here, the password.
    with pytest.raises(SourceError) as info, AceSource("postgres://ace:pa%zzss@127.0.0.1/x"):
        pass
    assert "pa%zzss" not in str(info.value) and "postgres://ace:***@127.0.0.1/x" in str(info.value)


# --- the import ---------------------------------------------------------------------------


def test_imports_tenant_with_every_field_and_its_tokens_work_at_once(ace):
    fields = {
        "baseUrl": "https://a.atlassian.net",
        "displayUrl": "https://jira.example.com",
        "displayUrlServicedeskHelpCenter": "https://help.example.com",
    }
    ace.install("tenant-a", SECRET_A, **fields)
    ace.set("tenant-a", "config", {"colour": "blue", "n": [1, 2]})
    ace.set("tenant-a", "count", 3)
    ace.set("tenant-a", "nothing", None)
    # A lookup before the import caches "no such tenant": the import must clear it.
    assert get_tenant("tenant-a") is None

    result = run_import(ace.url)

    assert result.error is None, result.text
    tenant = Tenant.objects.get(client_key="tenant-a")
    payload = install_payload("tenant-a", sharedSecret=SECRET_A, **fields)
    assert payload.keys() >= PAYLOAD_FIELDS.keys()
    for name, attr in PAYLOAD_FIELDS.items():
        assert getattr(tenant, attr) == payload[name], name
    assert tenant.shared_secret == SECRET_A
    assert SECRET_A not in tenant.shared_secret_encrypted
    assert tenant.installed and tenant.enabled
    assert settings_of("tenant-a") == {
        "config": {"colour": "blue", "n": [1, 2]},
        "count": 3,
        "nothing": None,
    }
    assert page_status("tenant-a", SECRET_A) == 200
    assert page_status("tenant-a", SECRET_B) == 401
    assert "Imported: 1 tenant(s) created, 0 updated; 3 setting(s) created" in result.out


def test_dry_run_writes_nothing_and_says_what_it_would_do(ace):
    ace.install("tenant-a", SECRET_A)
    ace.set("tenant-a", "config", {"x": 1})
    before = snapshot()

    result = run_import(ace.url, "--dry-run", verbosity=2)

    assert result.error is None, result.text
    assert snapshot() == before == ([], [])
    assert "Dry run (nothing written)" in result.out
    assert "created tenant-a (1 setting(s) new)" in result.out
    assert "Dry run: would create 1 and update 0 tenant(s), create 1 and update 0" in result.out


def test_a_second_run_changes_nothing_and_says_so(ace):
    ace.install("tenant-a", SECRET_A)
    ace.install(
        "tenant-b", SECRET_B, baseUrl="https://b.atlassian.net/wiki", productType="confluence"
    )
    ace.set("tenant-a", "config", {"x": 1})
    ace.set("tenant-b", "flags", [True, False])
    assert run_import(ace.url).error is None
    before = snapshot()

    again = run_import(ace.url, verbosity=2)
    dry = run_import(ace.url, "--dry-run")

    assert again.error is None and dry.error is None
    assert snapshot() == before  # not even updated_at moved
    assert "Nothing changed: this database already holds what ACE holds." in again.out
    assert "unchanged tenant-a" in again.out and "unchanged tenant-b" in again.out
    assert "Dry run: nothing would change." in dry.out


def test_a_run_after_ace_wrote_more_updates_what_changed(ace):
    info = ace.install("tenant-a", SECRET_A)
    changed = ace.set("tenant-a", "config", {"x": 1})
    ace.set("tenant-a", "same", "kept as is")
    assert run_import(ace.url).error is None
    same_before = AddonSetting.objects.get(key="same")
    # ACE wrote more: a changed value, a new key, a new tenant, and a new clientInfo field
    # with the same secret (the same installation).
    ace.update(changed, json.dumps({"x": 2}))
    ace.set("tenant-a", "added", 42)
    ace.install("tenant-b", SECRET_B, baseUrl="https://b.atlassian.net")
    ace.update(
        info, json.dumps(install_payload("tenant-a", sharedSecret=SECRET_A, serverVersion="200"))
    )

    result = run_import(ace.url, verbosity=2)

    assert result.error is None, result.text
    assert settings_of("tenant-a") == {"config": {"x": 2}, "same": "kept as is", "added": 42}
    assert Tenant.objects.get(client_key="tenant-a").server_version == "200"
    assert Tenant.objects.filter(client_key="tenant-b").exists()
    assert AddonSetting.objects.get(key="same").updated_at == same_before.updated_at
    assert "updated tenant-a: " not in result.out  # no reason: nothing was refused
    assert "updated tenant-a (serverVersion; 1 setting(s) new; 1 setting(s) changed)" in result.out
    assert "Imported: 1 tenant(s) created, 1 updated; 1 setting(s) created, 1 updated." in (
        result.out
    )


def test_settings_only_here_are_left_alone(ace):
    ace.install("tenant-a", SECRET_A)
    assert run_import(ace.url).error is None
    store.set("made-here", {"after": "cut-over"}, "tenant-a")
    assert run_import(ace.url).error is None
    assert settings_of("tenant-a") == {"made-here": {"after": "cut-over"}}


def test_broken_rows_are_reported_one_by_one_and_the_rest_is_imported(ace):
    good = ace.install("good", SECRET_A)
    ace.set("good", "fine", 1)
    bad_json = ace.raw("good", "broken", "{not json")
    no_key = ace.raw("good", None, json.dumps(1))
    no_client = ace.raw(None, "loose", json.dumps(1))
    orphan = ace.set("nobody", "orphan", {"x": 1})
    info_json = ace.raw("bad-json", "clientInfo", '{"clientKey": "bad-json", "sharedSecret": ')
    info_json_setting = ace.set("bad-json", "s", 1)
    without = {}
    for field in ("sharedSecret", "baseUrl", "clientKey"):
        payload = install_payload(f"no-{field}", sharedSecret=SECRET_B)
        del payload[field]
        without[field] = ace.set(f"no-{field}", "clientInfo", payload)
    other_app = ace.install("other-app", SECRET_B, key="com.example.another-app")
    not_object = ace.set("not-object", "clientInfo", ["a", "list"])
    mismatch = ace.set("mismatch", "clientInfo", install_payload("someone-else"))
    long_key = ace.set("good", "k" * 256, 1)

    result = run_import(ace.url)

    assert result.error is not None and "could not be imported" in str(result.error)
    assert Tenant.objects.get().client_key == "good"
    assert settings_of("good") == {"fine": 1}
    expected = {
        bad_json: "invalid JSON: Expecting property name enclosed in double quotes (line 1, col",
        no_key: "the row has no key",
        no_client: "the row has no clientKey",
        orphan: "no clientInfo row for this clientKey",
        info_json: "invalid JSON: Expecting value (line 1, column 43)",
        info_json_setting: f"its tenant was not imported (clientInfo row {info_json})",
        without["sharedSecret"]: "clientInfo has no 'sharedSecret'",
        without["baseUrl"]: "clientInfo has no 'baseUrl'",
        without["clientKey"]: "clientInfo has no 'clientKey'",
        other_app: "clientInfo: The payload is for another app key.",
        not_object: "clientInfo is not a JSON object",
        mismatch: "clientInfo's clientKey differs from the row's clientKey",
        long_key: "A setting key must be a string of 1 to 255 characters.",
    }
    for row_id, reason in expected.items():
        assert reason in report_line(result.out, row_id)
    assert not [line for line in result.out.splitlines() if line.split()[:1] == [str(good)]]
    # created, updated, unchanged, kept, failed
    assert table_row(result.out, "tenants") == [1, 0, 0, 0, 7]
    assert table_row(result.out, "settings") == [1, 0, 0, 0, 6]


@pytest.mark.parametrize("base_url", ["https://evil.example.com", "http://a.atlassian.net"])
def test_tenants_outside_the_host_allowlist_are_skipped_and_reported(ace, base_url):
    info = ace.install("outsider", SECRET_A, baseUrl=base_url)
    setting = ace.set("outsider", "config", 1)

    result = run_import(ace.url)

    assert result.error is not None
    assert not Tenant.objects.exists()
    assert f"baseUrl {base_url} is not an allowed host (HOST_ALLOWLIST, https)" in result.out
    assert f"its tenant was not imported (clientInfo row {info})" in report_line(
        result.out, setting
    )


@pytest.mark.parametrize("stamped", [False, True], ids=["ids", "updatedAt"])
def test_duplicates_newest_wins_and_the_others_are_reported(tmp_path, stamped):
    ace = AceDb(tmp_path / "dups.sqlite", timestamps=stamped)
    old, new = datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 6, 1, tzinfo=UTC)
    if stamped:
        # The newer row has the lower id: updatedAt decides, not insertion order.
        winner = ace.install("tenant-a", SECRET_NEW, at=new)
        loser = ace.install("tenant-a", SECRET_A, at=old)
        set_winner = ace.set("tenant-a", "config", "newest", at=new)
        set_loser = ace.set("tenant-a", "config", "older", at=old)
    else:
        loser = ace.install("tenant-a", SECRET_A)
        set_loser = ace.set("tenant-a", "config", "older")
        winner = ace.install("tenant-a", SECRET_NEW)
        set_winner = ace.set("tenant-a", "config", "newest")

    result = run_import(ace.url)

    assert result.error is None, result.text  # duplicates are resolved, not failures
    assert Tenant.objects.get().shared_secret == SECRET_NEW
    assert settings_of("tenant-a") == {"config": "newest"}
    assert "2 older duplicate row(s) ignored (newest wins)" in result.out
    assert report_line(result.out, loser).split() == [
        "" + str(loser),
        "tenant-a",
        "clientInfo",
        "row",
        str(winner),
    ]
    assert report_line(result.out, set_loser).split() == [
        str(set_loser),
        "tenant-a",
        "config",
        "row",
        str(set_winner),
    ]
    assert page_status("tenant-a", SECRET_NEW) == 200


def test_ace_token_cache_is_not_copied(ace):
    ace.install("tenant-a", SECRET_A)
    bearer = ace.set(
        "tenant-a", "bearer:" + "0123456789abcdef" * 2, {"token": "tok", "expiresAt": 1}
    )
    ace.set("tenant-a", "bearer-settings", {"x": 1})  # not the cache's shape: a setting

    result = run_import(ace.url)

    assert result.error is None
    assert settings_of("tenant-a") == {"bearer-settings": {"x": 1}}
    assert "cached OAuth 2.0 bearer token" in report_line(result.out, bearer)


def test_only_imports_the_named_tenants(ace):
    ace.install("tenant-a", SECRET_A)
    ace.install("tenant-b", SECRET_B)
    ace.set("nobody", "orphan", 1)

    result = run_import(ace.url, "--only", "tenant-b", "--only", "missing")

    assert result.error is None, result.text
    assert list(Tenant.objects.values_list("client_key", flat=True)) == ["tenant-b"]
    assert "1 of 1 rows read" in result.out


def test_no_secret_ever_reaches_the_output(ace):
    ace.install("tenant-a", SECRET_A)
    ace.set("tenant-a", "api", {"token": SECRET_B})
    ace.raw("broken", "clientInfo", f'{{"clientKey": "broken", "sharedSecret": "{SECRET_NEW}" oops')
    ace.set("tenant-a", "bearer:" + "f" * 32, {"token": SECRET_HERE})
    make_tenant("tenant-a", SECRET_HERE)  # a conflict, so the kept-tenant report shows too

    outputs = [
        run_import(ace.url, *a, verbosity=v) for v in (0, 1, 3) for a in ((), ("--dry-run",))
    ]
    outputs.append(run_import(ace.url, "--ace-is-live", verbosity=3))

    for result in outputs:
        for secret in (SECRET_A, SECRET_B, SECRET_NEW, SECRET_HERE):
            assert secret not in result.text
    assert "invalid JSON" in outputs[0].out  # verbosity 0 still shows what failed


def test_progress_is_shown_per_batch_on_long_runs(ace):
    ace.install("a-big", SECRET_A)
    for i in range(24):
        ace.set("a-big", f"key-{i:02}", i)
    for i in range(5):
        ace.install(f"t-{i}", SECRET_B)

    loud = run_import(ace.url, "--dry-run", "--batch-size", "10")
    quiet = run_import(ace.url, "--dry-run", "--batch-size", "10", verbosity=0)
    short = run_import(ace.url, "--dry-run", "--batch-size", "1000")

    lines = [line.split(" rows")[0] for line in loud.err.splitlines()]
    # Tenant "a-big" (25 rows) is one transaction, so progress jumps past 10 and 20.
    assert lines == ["25/30", "30/30"], loud.err
    assert quiet.err == "" and short.err == ""


def test_a_live_sqlite_ace_can_write_while_the_import_reads(ace):
    for i in range(6):
        ace.install(f"t-{i}", SECRET_A)
    written: list[int] = []

    def ace_writes(done: int, total: int) -> None:
        # timeout=0: "database is locked" at once if the import held SQLite's read lock.
        with closing(sqlite3.connect(ace.path, timeout=0)) as conn, conn:
            conn.execute("INSERT INTO AddonSettings (clientKey, key, val) VALUES ('a', 'k', '1')")
        written.append(done)

    with AceSource(ace.url, batch_size=2) as source:
        report = Importer(source, ImportOptions(dry_run=True)).run(progress=ace_writes)

    assert written == [1, 2, 3, 4, 5, 6]
    assert report.tenants.created == 6  # "a" sorts before the page already read: next run


def test_a_tenant_reinstalled_here_is_kept_with_its_secret_and_settings(ace):
    ace.install("tenant-a", SECRET_A)
    ace.set("tenant-a", "config", {"from": "ace"})
    assert run_import(ace.url).error is None
    # After the cut-over the tenant reinstalls here (new secret) and changes a setting.
    make_tenant("tenant-a", SECRET_HERE, base_url=Tenant.objects.get().base_url)
    store.set("config", {"from": "here"}, "tenant-a")
    before = snapshot()

    result = run_import(ace.url, verbosity=2)

    assert result.error is None, result.text
    assert snapshot() == before
    assert page_status("tenant-a", SECRET_HERE) == 200
    assert page_status("tenant-a", SECRET_A) == 401
    reason = (
        "tenant-a: its shared secret here differs from ACE's, and ACE's table records no times "
        "to show that its row is newer (pass --ace-is-live if ACE still serves the app)"
    )
    assert reason in result.out
    assert "kept tenant-a: " in result.out and "(1 setting(s) not imported)" in result.out
    assert table_row(result.out, "tenants") == [0, 0, 0, 1, 0]
    assert table_row(result.out, "settings") == [0, 0, 0, 1, 0]


def test_ace_is_live_takes_a_secret_that_ace_renewed(ace):
    info = ace.install("tenant-a", SECRET_A)
    assert run_import(ace.url).error is None
    assert page_status("tenant-a", SECRET_A) == 200  # the tenant is now in the cache
    tenant = Tenant.objects.get()
    tenant.enabled = False
    tenant.save()
    ace.update(info, json.dumps(install_payload("tenant-a", sharedSecret=SECRET_NEW)))

    result = run_import(ace.url, "--ace-is-live", verbosity=2)

    assert result.error is None, result.text
    tenant = Tenant.objects.get()
    assert tenant.shared_secret == SECRET_NEW and tenant.enabled  # a reinstall enables
    assert "updated tenant-a (sharedSecret, enabled)" in result.out
    # The cached tenant (old secret) was invalidated: the new secret works at once.
    assert page_status("tenant-a", SECRET_NEW) == 200
    assert page_status("tenant-a", SECRET_A) == 401


def test_an_uninstall_here_is_not_undone(ace):
    ace.install("tenant-a", SECRET_A)
    assert run_import(ace.url).error is None
    Tenant.objects.update(installed=False, enabled=False, uninstalled_at=timezone.now())

    result = run_import(ace.url)

    assert result.error is None
    assert not Tenant.objects.get().installed
    assert "tenant-a: it was uninstalled here, and ACE's table records no times" in result.out


def _stamp(ace: AceDb, row_id: int, when: datetime, value: Any = None) -> None:
    text = when.strftime("%Y-%m-%d %H:%M:%S.000 +00:00")
    with sqlite3.connect(ace.path) as conn:
        if value is not None:
            conn.execute(
                "UPDATE AddonSettings SET val = ? WHERE id = ?", (json.dumps(value), row_id)
            )
        conn.execute("UPDATE AddonSettings SET updatedAt = ? WHERE id = ?", (text, row_id))


def test_timestamps_decide_which_side_is_newer(ace_stamped):
    ace = ace_stamped
    t0 = timezone.now()  # the first import; later events are stamped after it
    info = ace.install("tenant-a", SECRET_A, at=t0 - timedelta(days=10))
    config = ace.set("tenant-a", "config", "ace-1", at=t0 - timedelta(days=10))
    other = ace.set("tenant-a", "other", "ace-1", at=t0 - timedelta(days=10))
    assert run_import(ace.url).error is None
    tenant = Tenant.objects.get()
    # The secret's time is ACE's updatedAt, not the import's.
    assert abs(tenant.secret_rotated_at - (t0 - timedelta(days=10))) < timedelta(seconds=1)

    # Here: a reinstall at +1 h, "other" changed at +2 h.
    tenant.shared_secret = SECRET_HERE
    tenant.secret_rotated_at = t0 + timedelta(hours=1)
    tenant.save()
    store.set("other", "here", "tenant-a")
    AddonSetting.objects.filter(key="other").update(updated_at=t0 + timedelta(hours=2))
    # ACE: clientInfo rewritten at +30 min (before our reinstall), "config" at +3 h (after
    # our import wrote it), "other" at +90 min (before our change).
    _stamp(
        ace, info, t0 + timedelta(minutes=30), install_payload("tenant-a", sharedSecret=SECRET_NEW)
    )
    _stamp(ace, config, t0 + timedelta(hours=3), "ace-2")
    _stamp(ace, other, t0 + timedelta(minutes=90), "ace-2")

    kept = run_import(ace.url)
    assert kept.error is None, kept.text
    assert "tenant-a: its shared secret here differs from ACE's (here: " in kept.out
    assert Tenant.objects.get().shared_secret == SECRET_HERE
    assert settings_of("tenant-a") == {"config": "ace-1", "other": "here"}

    # ACE's clientInfo rewritten at +4 h, after our reinstall: ACE's secret wins; "config"
    # (newer in ACE) is taken, "other" (changed here later) is kept.
    _stamp(ace, info, t0 + timedelta(hours=4))
    taken = run_import(ace.url, verbosity=2)

    assert taken.error is None, taken.text
    assert Tenant.objects.get().shared_secret == SECRET_NEW
    assert settings_of("tenant-a") == {"config": "ace-2", "other": "here"}
    assert "tenant-a / other: changed here at" in taken.out
    assert "updated tenant-a (sharedSecret; 1 setting(s) changed; 1 setting(s) kept)" in taken.out
    assert page_status("tenant-a", SECRET_NEW) == 200


def test_each_tenant_is_one_transaction(ace, monkeypatch):
    ace.install("tenant-a", SECRET_A)
    ace.set("tenant-a", "config", 1)
    ace.install("tenant-b", SECRET_B)
    ace.set("tenant-b", "config", 2)
    real_create = QuerySet.create

    def failing_for_b(self: QuerySet, **kwargs: Any) -> Any:
        # The database fails while tenant-b's setting is written, after its tenant row.
        if self.model is AddonSetting:
            if Tenant.objects.get(pk=kwargs["tenant_id"]).client_key == "tenant-b":
                raise DatabaseError("disk full, or any other database failure")
        return real_create(self, **kwargs)

    monkeypatch.setattr(QuerySet, "create", failing_for_b)
    result = run_import(ace.url)

    assert result.error is not None
    # tenant-b's row was inserted before its settings failed: rolled back with them.
    assert list(Tenant.objects.values_list("client_key", flat=True)) == ["tenant-a"]
    assert settings_of("tenant-a") == {"config": 1}
    assert "tenant-b: database error (DatabaseError)" in result.out
    assert "disk full" not in result.text


def test_an_interrupted_run_reports_what_it_finished(ace, monkeypatch):
    ace.install("tenant-a", SECRET_A)
    ace.install("tenant-b", SECRET_B)
    real = importer_module.import_tenant

    def interrupt_at_b(tenant: Any, options: Any) -> Any:
        if tenant.client_key == "tenant-b":
            raise KeyboardInterrupt  # Ctrl-C while tenant-b is being imported
        return real(tenant, options)

    monkeypatch.setattr(importer_module, "import_tenant", interrupt_at_b)
    result = run_import(ace.url)

    assert result.error is not None and result.error.returncode == 130
    assert "Interrupted" in str(result.error)
    assert list(Tenant.objects.values_list("client_key", flat=True)) == ["tenant-a"]
    assert "1 of 2 rows read (interrupted)" in result.out
    assert table_row(result.out, "tenants") == [1, 0, 0, 0, 0]


def test_setting_changed_is_sent_for_what_the_import_wrote(ace, django_capture_on_commit_callbacks):
    ace.install("tenant-a", SECRET_A)
    row = ace.set("tenant-a", "config", {"v": 1})
    seen: list[tuple[str, Any, Any]] = []

    def receiver(**kw: Any) -> None:
        seen.append((kw["key"], kw["old_value"], kw["new_value"]))

    signals.setting_changed.connect(receiver)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            run_import(ace.url)
        ace.update(row, json.dumps({"v": 2}))
        with django_capture_on_commit_callbacks(execute=True):
            run_import(ace.url)
        with django_capture_on_commit_callbacks(execute=True):
            run_import(ace.url)  # unchanged: no signal
    finally:
        signals.setting_changed.disconnect(receiver)
    assert seen == [("config", None, {"v": 1}), ("config", {"v": 1}, {"v": 2})]


def test_unreadable_sources_are_clear_errors(tmp_path, ace):
    missing = tmp_path / "missing.sqlite"
    result = run_import(f"sqlite:///{missing}")
    assert result.error is not None and "Cannot open" in str(result.error)
    assert not missing.exists()  # read-only: no empty database created

    with sqlite3.connect(tmp_path / "other.sqlite") as conn:
        conn.execute("CREATE TABLE AddonSettings (id INTEGER, name TEXT)")
    result = run_import(f"sqlite:///{tmp_path / 'other.sqlite'}")
    assert "no column clientKey, key, val (it has id, name)" in str(result.error)

    result = run_import(ace.url, "--table", "Nope")
    assert result.error is not None and "Cannot read 'Nope'" in str(result.error)

    result = run_import("mysql://u:hunter2@db/ace")
    assert "Unsupported database URL 'mysql://u:***@db/ace'" in str(result.error)
    assert "hunter2" not in result.text


def test_custom_table_name(tmp_path):
    path = tmp_path / "custom.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute('CREATE TABLE "My Settings" (id INTEGER PRIMARY KEY, clientKey, key, val)')
        conn.execute(
            'INSERT INTO "My Settings" (clientKey, key, val) VALUES (?, ?, ?)',
            ("tenant-a", "clientInfo", json.dumps(install_payload("tenant-a"))),
        )
    result = run_import(f"sqlite:///{path}", "--table", "My Settings")
    assert result.error is None, result.text
    assert Tenant.objects.filter(client_key="tenant-a").exists()


def test_source_reads_in_batches_grouped_by_tenant(ace):
    for key in ("b", "a", None, "b", "c", None, "a", None):
        ace.set(key, "x", 1)
    with AceSource(ace.url, batch_size=2) as source:
        assert source.count() == 8
        groups = [(ck, [r.id for r in rows]) for ck, rows in source.tenants()]
    assert groups == [(None, [3, 6, 8]), ("a", [2, 7]), ("b", [1, 4]), ("c", [5])]
    with AceSource(ace.url, batch_size=1, only=["c", "a"]) as source:
        assert source.count() == 3
        assert [(ck, len(rows)) for ck, rows in source.tenants()] == [("a", 2), ("c", 1)]
    with pytest.raises(SourceError, match="at least 1"):
        AceSource(ace.url, batch_size=0)


def test_reads_a_postgresql_store_with_text_values_and_timestamps():
    """An older or hand-made ACE table on PostgreSQL: ``val`` as text, sequelize timestamps."""
    import psycopg

    with scratch_postgres_database(f"ace_import_text_{os.getpid()}") as url:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                'CREATE TABLE "AddonSettings" (id serial PRIMARY KEY, "clientKey" varchar(255), '
                'key varchar(255), val text, "createdAt" timestamptz NOT NULL, '
                '"updatedAt" timestamptz NOT NULL)'
            )
            rows = [
                (
                    "tenant-a",
                    "clientInfo",
                    json.dumps(install_payload("tenant-a", sharedSecret=SECRET_A)),
                    "2024-06-01T00:00:00Z",
                ),
                ("tenant-a", "config", "{not json", "2024-06-01T00:00:00Z"),
                ("tenant-a", "count", "7", "2024-01-01T00:00:00Z"),
                ("tenant-a", "count", "8", "2023-01-01T00:00:00Z"),  # higher id, older: loses
                (None, "loose", "1", "2024-01-01T00:00:00Z"),
            ]
            for client_key, key, val, at in rows:
                conn.execute(
                    'INSERT INTO "AddonSettings" ("clientKey", key, val, "createdAt", "updatedAt") '
                    "VALUES (%s, %s, %s, %s, %s)",
                    (client_key, key, val, at, at),
                )
        result = run_import(url, "--batch-size", "2")

    assert result.error is not None, result.text
    assert Tenant.objects.get().shared_secret == SECRET_A
    assert Tenant.objects.get().secret_rotated_at == datetime(2024, 6, 1, tzinfo=UTC)
    assert settings_of("tenant-a") == {"count": 7}
    assert "invalid JSON" in report_line(result.out, 2)
    assert "row 3" in report_line(result.out, 4)
    assert "the row has no clientKey" in report_line(result.out, 5)
    assert "postgres://" in result.out and "5 of 5 rows read" in result.out


# --- ACE itself writes the store (node) ---------------------------------------------------


@pytest.fixture(scope="session")
def ace_store(tmp_path_factory: pytest.TempPathFactory) -> AceStore:
    # The test script keeps one install across its runs (sqlite3 compiles for a minute).
    kept = os.environ.get("CONNECT_TEST_NPM_DIR")
    if kept:
        directory = Path(kept) / f"ace-{ACE_VERSION}"
        directory.mkdir(parents=True, exist_ok=True)
        return install_ace(directory)
    return install_ace(tmp_path_factory.mktemp("ace"))


@pytest.fixture(params=["sqlite", "postgres"])
def ace_database(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    """ACE's store options (what an app puts under "store" in config.json) and our URL."""
    ace_store = request.getfixturevalue("ace_store")
    if request.param == "sqlite":
        if ace_store.sqlite_error:
            unavailable(ace_store.sqlite_error)
        path = tmp_path / "ace-store.sqlite"
        yield {"dialect": "sqlite", "storage": str(path)}, f"sqlite:///{path}"
    else:
        name = f"ace_import_test_{os.getpid()}"
        with scratch_postgres_database(name) as url:
            yield {"url": url}, url


def _ace_payload(client_key: str, secret: str, **overrides: Any) -> dict[str, Any]:
    return install_payload(client_key, sharedSecret=secret, **overrides)


ACE_SETTINGS: dict[str, Any] = {
    "config": {"colour": "blue", "nested": {"list": [1, 2.5, None, True]}, "ü": "ß"},
    "plain": "hello",
    "stringified": json.dumps({"made": "by JSON.stringify"}),
    "count": 7,
    "ratio": 0.25,
    "off": False,
    "empty": None,
    "list": ["a", {"b": 1}],
}


@pytest.mark.node
@pytest.mark.django_db(transaction=True)
def test_import_a_database_written_by_ace(ace_store, ace_database):
    options, url = ace_database
    conf = _ace_payload("conf-1", SECRET_B, baseUrl="https://b.atlassian.net/wiki")
    conf["productType"] = "confluence"
    ops: list[dict[str, Any]] = [
        {"op": "install", "payload": _ace_payload("jira-1", SECRET_A)},
        # A reinstall: ACE updates the clientInfo row in place (findOrCreate + update).
        {"op": "install", "payload": _ace_payload("jira-1", SECRET_NEW)},
        {"op": "install", "payload": conf},
        {
            "op": "install",
            "payload": _ace_payload("evil", SECRET_B, baseUrl="https://evil.example.com"),
        },
        *(
            {"op": "set", "key": k, "value": v, "clientKey": "jira-1"}
            for k, v in ACE_SETTINGS.items()
        ),
        {"op": "set", "key": "config", "value": {"space": "DOC"}, "clientKey": "conf-1"},
        {
            "op": "set",
            "key": "bearer:" + "a" * 32,
            "value": {"token": "x", "expiresAt": 1},
            "clientKey": "jira-1",
        },
        {"op": "set", "key": "leftover", "value": 1, "clientKey": "gone"},
        {"op": "insert_duplicate", "key": "count", "value": 8, "clientKey": "jira-1"},
        *({"op": "get", "key": k, "clientKey": "jira-1"} for k in ACE_SETTINGS),
    ]
    results = ace_store.run(options, ops)
    # What the ACE app reads back through addon.settings.get: our oracle for every value.
    ace_reads = dict(zip(ACE_SETTINGS, results[-len(ACE_SETTINGS) :], strict=True))
    assert ace_reads["stringified"] == {"made": "by JSON.stringify"}
    duplicate_id = results[-len(ACE_SETTINGS) - 1]

    dry = run_import(url, "--dry-run")
    assert not Tenant.objects.exists()
    first = run_import(url, verbosity=2)

    assert first.error is not None  # the evil tenant and the orphan setting
    assert sorted(Tenant.objects.values_list("client_key", flat=True)) == ["conf-1", "jira-1"]
    expected = dict(ace_reads, count=8)  # the duplicate row inserted last is the newest
    assert all(json_equal(settings_of("jira-1")[k], v) for k, v in expected.items())
    assert settings_of("jira-1").keys() == expected.keys()
    assert settings_of("conf-1") == {"config": {"space": "DOC"}}
    conf_tenant = Tenant.objects.get(client_key="conf-1")
    assert (conf_tenant.product_type, conf_tenant.base_path) == ("confluence", "/wiki")
    assert page_status("jira-1", SECRET_NEW) == 200
    assert page_status("jira-1", SECRET_A) == 401
    assert page_status("conf-1", SECRET_B) == 200
    assert "baseUrl https://evil.example.com is not an allowed host" in first.out
    assert "no clientInfo row for this clientKey" in first.out
    assert f"row {duplicate_id}" in first.out and "cached OAuth 2.0 bearer token" in first.out
    for label in ("tenants", "settings"):
        assert table_row(dry.out, label) == table_row(first.out, label)
    for secret in (SECRET_A, SECRET_B, SECRET_NEW):
        assert secret not in first.text and secret not in dry.text

    before = snapshot()
    second = run_import(url)
    assert snapshot() == before
    assert "Nothing changed; the rows listed above cannot be imported." in second.out

    # ACE writes more: a new tenant, a changed and a new setting, and a reinstall of
    # conf-1 (new secret; ACE keeps no time, so only --ace-is-live may take it).
    ace_store.run(
        options,
        [
            {"op": "install", "payload": _ace_payload("jira-2", SECRET_A)},
            {"op": "set", "key": "plain", "value": "changed", "clientKey": "jira-1"},
            {"op": "set", "key": "fresh", "value": [1], "clientKey": "jira-1"},
            {"op": "install", "payload": dict(conf, sharedSecret=SECRET_HERE)},
        ],
    )
    third = run_import(url, verbosity=2)
    assert Tenant.objects.filter(client_key="jira-2").exists()
    assert settings_of("jira-1")["plain"] == "changed" and settings_of("jira-1")["fresh"] == [1]
    assert "kept conf-1: its shared secret here differs from ACE's, and ACE's table" in third.out
    assert page_status("conf-1", SECRET_B) == 200

    fourth = run_import(url, "--ace-is-live", verbosity=2)
    assert "updated conf-1 (sharedSecret)" in fourth.out
    assert page_status("conf-1", SECRET_HERE) == 200
    assert page_status("conf-1", SECRET_B) == 401
    assert page_status("jira-2", SECRET_A) == 200
    for result in (third, fourth):
        assert SECRET_HERE not in result.text and SECRET_A not in result.text


@pytest.mark.postgres
def test_a_value_postgresql_cannot_store_is_a_row_error(ace):
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL as this project's database: jsonb refuses U+0000")
    ace.install("tenant-a", SECRET_A)
    ok = ace.set("tenant-a", "ok", 1)
    nul = ace.set("tenant-a", "nul", {"text": "a\u0000b"})

    result = run_import(ace.url)

    assert result.error is not None
    assert settings_of("tenant-a") == {"ok": 1}
    assert "PostgreSQL cannot store the character U+0000" in report_line(result.out, nul)
    assert ok != nul
