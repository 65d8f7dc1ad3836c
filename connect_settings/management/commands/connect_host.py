"""``manage.py connect_host``: run the local Atlassian host emulator, or drive a running one.

    manage.py connect_host --app-url http://127.0.0.1:8000        # serve, install, print URL
    manage.py connect_host --product confluence --state-file .connect-host.json
    manage.py connect_host install http://127.0.0.1:8000
    manage.py connect_host reinstall | disable | enable | uninstall [KEY]
    manage.py connect_host apps | properties [KEY] | property NAME [--app KEY]
    manage.py connect_host page-url [KEY] [--module KEY]
    manage.py connect_host fault --status 429 --count 3 --retry-after 1 | --drop | --delay 2
    manage.py connect_host fault --list | --clear
    manage.py connect_host forge [--events-url URL] | forge-fit [--principal ID] [--context {}]
    manage.py connect_host system-token | move-to-forge [KEY] | forge-reinstall
    manage.py connect_host forge-event [URL] [--type upgraded] [--wrapped] [--retry-delay 1]

The emulator needs nothing from the project; ``python -m connect_settings.host`` is the same.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from connect_settings.host.cli import CliError, add_arguments, run


class Command(BaseCommand):
    help = "Run a local Jira/Confluence Cloud emulator for Connect apps, or drive a running one."
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        add_arguments(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            run(options, self.stdout)
        except CliError as err:
            raise CommandError(str(err)) from err
