"""The arguments of upload / ls / get / rm / presign / doctor. Every command also takes `--json`
and `-v` (the library's INFO log lines on stderr); `--provider NAME` where one provider is meant."""

from __future__ import annotations

import argparse
import math
from typing import Any, TypeVar

DEFAULT_DOCTOR_TIMEOUT_S = 10.0
P = TypeVar("P", bound=argparse.ArgumentParser)


def _float_seconds(value: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of seconds") from None


def positive_seconds(value: str) -> float:
    seconds = _float_seconds(value)
    if not math.isfinite(seconds) or seconds <= 0:
        raise argparse.ArgumentTypeError(f"{value!r} must be a number of seconds above 0")
    return seconds


def seconds_or_zero(value: str) -> float:
    seconds = _float_seconds(value)
    if not math.isfinite(seconds) or seconds < 0:
        raise argparse.ArgumentTypeError(f"{value!r} must be a number of seconds, 0 or more")
    return seconds


def expiry_seconds(value: str) -> int:
    try:
        seconds = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number of seconds") from None
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"{value!r} must be above 0 seconds")
    return seconds


def common_options(parser_class: type[P]) -> P:
    """Options every command takes (a parent parser, so they go after the command's name), of
    the class of the `unistore` parser."""
    common = parser_class(add_help=False)
    common.add_argument("--json", action="store_true", help="machine-readable output (JSON; JSON lines for ls)")
    common.add_argument(
        "-v", "--verbose", action="store_true", help="also print the library's INFO log lines on stderr"
    )
    return common


def _provider(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--provider", metavar="NAME", help=f"{what} (s3, azure, ...)")


def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add the commands to `sub` (the `add_subparsers()` of `unistore`)."""
    upload = sub.add_parser(
        "upload",
        parents=[common],
        help="upload a file to every configured provider (STORAGE_UPLOAD_MODE)",
        description="Upload FILE to every configured provider at once, with one progress bar per "
        "provider on a terminal. Exit status 0 only when the upload report is ok (STORAGE_REQUIRE).",
    )
    upload.add_argument("file", metavar="FILE", help="the recording; '-' reads it from stdin (with --key)")
    upload.add_argument("--key", metavar="K", help="object key (default: the file's name)")
    upload.add_argument("--content-type", metavar="T", help="default: guessed from the file's name")
    upload.add_argument(
        "--delete-local", action="store_true", help="delete FILE once every provider has stored it (else it is kept)"
    )
    upload.add_argument(
        "--no-overwrite", action="store_true", help="never replace an existing object (a conditional create)"
    )
    upload.add_argument(
        "--tier", metavar="T",
        help="storage tier: hot, cool, cold or archive on every provider, or one per provider "
        "(s3=STANDARD_IA,azure=Cool); default AWS_S3_STORAGE_CLASS / AZURE_STORAGE_ACCESS_TIER",
    )
    upload.add_argument(
        "--events", action="store_true",
        help="with --json: JSON lines, one per upload event as it happens (provider_committed, provider_failed, "
        "upload_settled), then the report as the last line",
    )

    ls = sub.add_parser(
        "ls",
        parents=[common],
        help="list keys, which providers hold each, and their sizes",
        description="List the keys under PREFIX across the configured providers, each with the "
        "providers holding a copy and its size.",
    )
    ls.add_argument("prefix", nargs="?", default="", metavar="PREFIX")
    _provider(ls, "list this provider only")

    get = sub.add_parser(
        "get",
        parents=[common],
        help="download an object from the first provider that holds it",
        description="Download KEY from the first provider (STORAGE_READ_ORDER) that holds it; one "
        "that fails or lacks it hands over to the next. DEST defaults to the key's last part in the "
        "current folder; a folder keeps that name; '-' writes the bytes to stdout.",
    )
    get.add_argument("key", metavar="KEY")
    get.add_argument("dest", nargs="?", metavar="DEST")
    _provider(get, "read from this provider only, no failover")

    rm = sub.add_parser(
        "rm",
        parents=[common],
        help="delete every copy of an object",
        description="Delete KEY from every configured provider (or one). Exit status 1 when a copy may remain.",
    )
    rm.add_argument("key", metavar="KEY")
    _provider(rm, "delete from this provider only")

    presign = sub.add_parser(
        "presign",
        parents=[common],
        help="print a presigned URL for an object",
        description="Print a URL that grants METHOD on KEY for --expires seconds without credentials: "
        "GET from the first healthy provider that holds the key, PUT from the first healthy provider.",
    )
    presign.add_argument("key", metavar="KEY")
    presign.add_argument("--expires", type=expiry_seconds, default=3600, metavar="SECONDS", help="default: 3600")
    presign.add_argument("--method", type=str.upper, choices=("GET", "PUT"), default="GET")
    _provider(presign, "sign with this provider")

    doctor = sub.add_parser(
        "doctor",
        parents=[common],
        help="check the settings and every provider (usable as a readiness probe)",
        description="Check that the settings are valid and, for each configured provider, that the "
        "credentials are accepted, the bucket or container exists, and a small probe object can be "
        "written, read back and deleted (under the reserved prefix). Exit status 0 only when every "
        "check passed.",
    )
    doctor.add_argument(
        "--timeout",
        type=positive_seconds,
        default=DEFAULT_DOCTOR_TIMEOUT_S,
        metavar="SECONDS",
        help=f"bound of each check (default {DEFAULT_DOCTOR_TIMEOUT_S:g}); a provider that times out "
        "skips its remaining checks",
    )
    _provider(doctor, "check this provider only")
