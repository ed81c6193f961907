"""The `unistore` command line (`python -m unistore`). Heavy imports stay inside commands."""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="unistore",
        description="Upload recordings to AWS S3, Azure Blob Storage, or both, as the environment says.",
    )
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("config", help="print the configuration table (variables, meaning, default)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "config":
        from ._settings import settings_table

        print(settings_table())  # noqa: T201
        return 0
    parser.print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())
