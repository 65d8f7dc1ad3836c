"""What an ACE import did, row by row and tenant by tenant, and its text rendering.

Only identifiers (row ids, clientKeys, setting keys, payload field names) and reasons are
recorded: never a value, so nothing rendered here can show a shared secret or a setting.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .source import CLIENT_INFO, AceRow

ACTIONS = ("created", "updated", "unchanged", "kept", "failed")


def printable(text: object) -> str:
    """``text`` with control characters escaped: keys come from someone else's database."""
    return "".join(
        ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in str(text)
    )


@dataclass(frozen=True)
class RowNote:
    row_id: int
    client_key: str | None
    key: str | None
    reason: str

    @classmethod
    def of(cls, row: AceRow, reason: str) -> RowNote:
        return cls(row.id, row.client_key, row.key, reason)


@dataclass
class Counts:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    kept: int = 0
    failed: int = 0

    def add(self, action: str, n: int = 1) -> None:
        setattr(self, action, getattr(self, action) + n)

    def values(self) -> list[int]:
        return [getattr(self, a) for a in ACTIONS]


@dataclass
class TenantOutcome:
    """One clientKey's result; ``fields`` names changed clientInfo fields (never values)."""

    client_key: str
    action: str
    reason: str = ""
    fields: list[str] = field(default_factory=list)
    settings_created: list[str] = field(default_factory=list)
    settings_updated: list[str] = field(default_factory=list)
    settings_kept: dict[str, str] = field(default_factory=dict)
    settings_unchanged: int = 0
    #: ACE settings not compared because the whole tenant was kept or failed.
    settings_skipped: int = 0

    def describe(self) -> str:
        parts = [f"{self.action} {printable(self.client_key)}"]
        if self.reason:
            parts.append(f": {self.reason}")
        details = []
        if self.fields:
            details.append(", ".join(self.fields))
        for label, keys in (("new", self.settings_created), ("changed", self.settings_updated)):
            if keys:
                details.append(f"{len(keys)} setting(s) {label}")
        if self.settings_kept:
            details.append(f"{len(self.settings_kept)} setting(s) kept")
        if self.settings_skipped:
            details.append(f"{self.settings_skipped} setting(s) not imported")
        if details:
            parts.append(f" ({'; '.join(details)})")
        return "".join(parts)


@dataclass
class ImportReport:
    source: str
    table: str
    dry_run: bool = False
    rows_total: int = 0
    rows_read: int = 0
    tenants: Counts = field(default_factory=Counts)
    settings: Counts = field(default_factory=Counts)
    failures: list[RowNote] = field(default_factory=list)
    duplicates: list[tuple[RowNote, int]] = field(default_factory=list)
    ignored_rows: list[RowNote] = field(default_factory=list)
    outcomes: list[TenantOutcome] = field(default_factory=list)
    interrupted: bool = False

    # --- recording --------------------------------------------------------------------------

    def failed(self, row: AceRow, reason: str) -> None:
        self.failures.append(RowNote.of(row, reason))
        (self.tenants if row.key == CLIENT_INFO else self.settings).add("failed")

    def duplicate(self, row: AceRow, winner: AceRow) -> None:
        self.duplicates.append((RowNote.of(row, "older duplicate"), winner.id))

    def ignored(self, row: AceRow, reason: str) -> None:
        self.ignored_rows.append(RowNote.of(row, reason))

    def record(self, outcome: TenantOutcome) -> None:
        self.outcomes.append(outcome)
        self.tenants.add(outcome.action)
        self.settings.add("created", len(outcome.settings_created))
        self.settings.add("updated", len(outcome.settings_updated))
        self.settings.add("unchanged", outcome.settings_unchanged)
        self.settings.add("kept", len(outcome.settings_kept))
        if outcome.action in ("kept", "failed"):
            self.settings.add(outcome.action, outcome.settings_skipped)

    @property
    def changed(self) -> bool:
        return any(
            (
                self.tenants.created,
                self.tenants.updated,
                self.settings.created,
                self.settings.updated,
            )
        )

    # --- rendering --------------------------------------------------------------------------

    def summary_lines(self) -> list[str]:
        what = "Dry run (nothing written)" if self.dry_run else "Import"
        lines = [
            f"{what} from {self.source}, table {printable(self.table)}: "
            f"{self.rows_read} of {self.rows_total} rows read"
            + (" (interrupted)" if self.interrupted else "")
        ]
        header = ["", *ACTIONS]
        body = [["tenants", *map(str, self.tenants.values())]]
        body.append(["settings", *map(str, self.settings.values())])
        lines += _table([header, *body], right=True)
        extras = []
        if self.duplicates:
            extras.append(f"{len(self.duplicates)} older duplicate row(s) ignored (newest wins)")
        if self.ignored_rows:
            extras.append(f"{len(self.ignored_rows)} row(s) of ACE's token cache skipped")
        if extras:
            lines.append("; ".join(extras) + ".")
        return lines

    def failure_lines(self) -> list[str]:
        """The rows that could not be imported, and why."""
        lines: list[str] = []
        if self.failures:
            lines.append(f"Not imported ({len(self.failures)} row(s)):")
            rows = [["row", "clientKey", "key", "reason"]]
            rows += [
                [str(n.row_id), _id(n.client_key), _id(n.key), n.reason] for n in self.failures
            ]
            lines += _table(rows, indent="  ")
        failed = [o for o in self.outcomes if o.action == "failed"]
        if failed:
            lines.append("Failed while writing (nothing of these tenants was written):")
            lines += [f"  {printable(o.client_key)}: {o.reason}" for o in failed]
        return lines

    def detail_lines(self) -> list[str]:
        """The per-row report: failures, duplicates, rows skipped on purpose, what was kept."""
        lines = self.failure_lines()
        if self.duplicates:
            lines.append(f"Duplicates, newest wins ({len(self.duplicates)} older row(s) ignored):")
            rows = [["row", "clientKey", "key", "used instead"]]
            rows += [
                [str(n.row_id), _id(n.client_key), _id(n.key), f"row {winner}"]
                for n, winner in self.duplicates
            ]
            lines += _table(rows, indent="  ")
        if self.ignored_rows:
            lines.append(f"Skipped on purpose ({len(self.ignored_rows)} row(s)):")
            rows = [["row", "clientKey", "key", "why"]]
            rows += [
                [str(n.row_id), _id(n.client_key), _id(n.key), n.reason] for n in self.ignored_rows
            ]
            lines += _table(rows, indent="  ")
        kept = [o for o in self.outcomes if o.action == "kept" or o.settings_kept]
        if kept:
            lines.append("Kept as they are here (newer here than in ACE):")
            for o in kept:
                if o.action == "kept":
                    lines.append(f"  {printable(o.client_key)}: {o.reason}")
                for key, why in o.settings_kept.items():
                    lines.append(f"  {printable(o.client_key)} / {printable(key)}: {why}")
        return lines

    def verdict(self) -> str:
        t, s = self.tenants, self.settings
        if self.dry_run:
            if not self.changed:
                return "Dry run: nothing would change."
            return (
                f"Dry run: would create {t.created} and update {t.updated} tenant(s), "
                f"create {s.created} and update {s.updated} setting(s). Nothing was written."
            )
        if not self.changed:
            if self.problem_count:
                return "Nothing changed; the rows listed above cannot be imported."
            return "Nothing changed: this database already holds what ACE holds."
        return (
            f"Imported: {t.created} tenant(s) created, {t.updated} updated; "
            f"{s.created} setting(s) created, {s.updated} updated."
        )

    @property
    def problem_count(self) -> int:
        return len(self.failures) + sum(1 for o in self.outcomes if o.action == "failed")


#: Longer clientKeys and keys are cut in the tables (the row id still names the row).
ID_WIDTH = 60


def _id(value: str | None) -> str:
    if value is None:
        return "(none)"
    text = printable(value) or '""'
    return text if len(text) <= ID_WIDTH else text[: ID_WIDTH - 1] + "…"


def _table(rows: list[list[str]], *, indent: str = "", right: bool = False) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = []
    for r in rows:
        cells = []
        for i, cell in enumerate(r):
            last = i == len(r) - 1
            if right and i > 0:
                cells.append(cell.rjust(widths[i]))
            else:
                cells.append(cell if last else cell.ljust(widths[i]))
        out.append((indent + "  ".join(cells)).rstrip())
    return out
