"""``python -m connect_settings.host``: the emulator without a Django project."""

from __future__ import annotations

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
