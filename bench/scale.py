"""Scale: store get/set and W4 latency with 1 000 tenants, then 100 000 tenants / 1 000 000 rows."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="bench/results/scale")


def run(args: argparse.Namespace) -> int:
    raise NotImplementedError
