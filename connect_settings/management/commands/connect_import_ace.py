"""``connect_import_ace``: tenants and settings from an atlassian-connect-express database."""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from typing import Any

from django.core.management.base import (
    BaseCommand,
    CommandError,
    CommandParser,
    DjangoHelpFormatter,
    OutputWrapper,
)

from connect_settings.ace_import import AceSource, Importer, ImportOptions, SourceError
from connect_settings.ace_import.report import ImportReport, TenantOutcome, printable
from connect_settings.ace_import.source import DEFAULT_TABLE

ENV_URL = "ACE_DATABASE_URL"

HELP = f"""\
Import tenants and settings from an atlassian-connect-express (ACE) database: the table
of its sequelize store ({DEFAULT_TABLE}: id, clientKey, key, val) on SQLite or PostgreSQL.
The source is only read.

Each clientInfo row becomes a tenant (shared secret encrypted), every other key a setting
of that tenant; the tenants' current tokens work at once, without a reinstall. Each tenant
is imported in one transaction. Run it again at any time: only what differs is written.

Not imported, and reported row by row: invalid JSON; a clientInfo without clientKey,
sharedSecret or baseUrl, with an invalid field or for another app key; a baseUrl whose host
is outside HOST_ALLOWLIST or that is not https (the tenant and its settings are skipped);
settings of a clientKey that has no clientInfo. Duplicate rows (ACE's index is not unique):
the newest wins (latest updatedAt, else highest id), the others are reported. ACE's cached
OAuth bearer tokens (keys bearer:<md5>) are credentials, not settings: skipped.

Newer here wins. A tenant whose shared secret differs from ACE's, or that was uninstalled
here, is kept whole (with its settings) and reported, unless ACE's row is later (its
updatedAt, where the table has one) or --ace-is-live says ACE still serves the app. A
setting that differs is taken from ACE unless ours was written after ACE's updatedAt;
settings that exist only here are left alone.

Exit status 1 when some rows could not be imported (everything else was).
"""


class _HelpFormatter(DjangoHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Django's option order, with the description's paragraphs kept as written."""


class _Progress:
    """Rows done so far, on stderr: one line per batch, or one line rewritten on a TTY."""

    def __init__(self, stream: OutputWrapper, step: int) -> None:
        self.stream = stream
        self.step = step
        self.next = step
        self.tty = stream.isatty()
        self.started = time.monotonic()
        self.shown = False

    def __call__(self, done: int, total: int) -> None:
        if total <= self.step or (done < self.next and done < total):
            return  # a run of one batch needs no progress; otherwise once per batch
        self.next = (done // self.step + 1) * self.step
        elapsed = max(time.monotonic() - self.started, 1e-6)
        line = f"{done}/{total} rows ({done * 100 // total}%), {done / elapsed:.0f} rows/s"
        if self.tty:
            self.stream.write(f"\r{line}", ending="", style_func=str)
            self.stream.flush()
        else:
            self.stream.write(line, style_func=str)
        self.shown = True

    def finish(self) -> None:
        if self.tty and self.shown:
            self.stream.write("", style_func=str)


class Command(BaseCommand):
    help = HELP

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.formatter_class = _HelpFormatter
        return parser

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--database-url",
            default=os.environ.get(ENV_URL),
            help=(
                "ACE's database: sqlite:////absolute/path.sqlite, sqlite:///relative.sqlite, "
                "postgres://user:password@host:5432/db (libpq parameters such as "
                f"?sslmode=require allowed). Default: ${ENV_URL}, which keeps a password "
                "out of the process list."
            ),
        )
        parser.add_argument(
            "--table", default=DEFAULT_TABLE, help="ACE's table (opts.table); schema.table allowed."
        )
        parser.add_argument(
            "--only",
            action="append",
            default=[],
            metavar="CLIENT_KEY",
            help="Import only this clientKey (repeatable).",
        )
        parser.add_argument(
            "--batch-size",
            type=int,
            default=1000,
            help="Rows fetched per round trip; progress is shown once per batch (default 1000).",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Report what would change; write nothing."
        )
        parser.add_argument(
            "--ace-is-live",
            action="store_true",
            help=(
                "ACE still serves the app (before the cut-over), so its data is the newest: "
                "take ACE's shared secret, and its settings, where ours differ. Never after "
                "the cut-over."
            ),
        )

    def handle(self, *args: Any, **options: Any) -> None:
        url = options["database_url"]
        if not url:
            raise CommandError(f"Pass --database-url or set ${ENV_URL}.")
        verbosity = int(options["verbosity"])
        opts = ImportOptions(dry_run=options["dry_run"], ace_is_live=options["ace_is_live"])
        try:
            source = AceSource(
                url, table=options["table"], only=options["only"], batch_size=options["batch_size"]
            )
            with source:
                importer = Importer(source, opts)
                progress = _Progress(self.stderr, options["batch_size"]) if verbosity else None
                try:
                    importer.run(
                        progress=progress,
                        on_tenant=self._tenant_printer(verbosity) if verbosity >= 2 else None,
                    )
                except KeyboardInterrupt:
                    self._finish(importer.report, verbosity, progress)
                    raise CommandError(
                        "Interrupted: the tenants listed as done are imported, the current one "
                        "is not. Run again to continue.",
                        returncode=130,
                    ) from None
        except SourceError as err:
            raise CommandError(str(err)) from err
        self._finish(importer.report, verbosity, progress)
        if importer.report.problem_count:
            raise CommandError(
                f"{importer.report.problem_count} row(s) or tenant(s) could not be imported: "
                "see the report above."
            )

    def _tenant_printer(self, verbosity: int) -> Callable[[TenantOutcome], None]:
        def show(outcome: TenantOutcome) -> None:
            self.stdout.write(outcome.describe())
            if verbosity >= 3:
                for label, keys in (
                    ("new", outcome.settings_created),
                    ("changed", outcome.settings_updated),
                    ("kept", list(outcome.settings_kept)),
                ):
                    for key in keys:
                        self.stdout.write(f"    {label}: {printable(key)}")

        return show

    def _finish(self, report: ImportReport, verbosity: int, progress: _Progress | None) -> None:
        if progress is not None:
            progress.finish()
        if verbosity >= 1:
            lines = [*report.summary_lines(), *report.detail_lines()]
        else:
            lines = report.failure_lines()  # problems are never silent
        for line in lines:
            self.stdout.write(line)
        style = self.style.SUCCESS if not report.problem_count else self.style.WARNING
        self.stdout.write(style(report.verdict()))
