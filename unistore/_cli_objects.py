"""`unistore ls`, `rm` and `presign`: questions and orders about keys already stored."""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from ._cli_output import Output, copies_json, error_json, human_size, one_line
from ._report import ProviderResult, UploadReport

if TYPE_CHECKING:
    from ._reads import ListedObject
    from ._storage import Storage


def _sizes(item: ListedObject) -> str:
    """The size, or each copy's when they differ (a copy that is not the same object)."""
    sizes = {info.size for info in item.copies.values()}
    if len(sizes) == 1:
        return human_size(item.size)
    return ", ".join(f"{name} {human_size(info.size)}" for name, info in item.copies.items())


def _tiers(item: ListedObject) -> str:
    """The tier, or each copy's in the order of PROVIDERS when they differ (an S3 class and an
    Azure tier always do: `STANDARD,Cool`); `-` for a copy whose service names none."""
    tiers = [info.tier or "-" for info in item.copies.values()]
    return tiers[0] if len(set(tiers)) == 1 else ",".join(tiers)


async def ls(storage: Storage, args: argparse.Namespace, output: Output) -> int:
    """Every key under the prefix, with the providers holding it; a key some provider lacks is
    counted in the last line, since a recording must be on every provider of the fan-out."""
    listed = [args.provider] if args.provider else list(storage.read_order)
    items = storage.list(args.prefix, provider=args.provider)
    if output.json_mode:
        async for item in items:
            providers = list(item.providers)
            tiers = {name: info.tier for name, info in item.copies.items()}
            output.json_line({"key": item.key, "size": item.size, "providers": providers, "tiers": tiers,
                              "copies": copies_json(item.copies)})
        return 0
    rows: list[tuple[str, str, str, str]] = []
    total = 0
    incomplete = 0
    async for item in items:
        total += item.size
        incomplete += len(item.copies) < len(listed)
        rows.append((_sizes(item), _tiers(item), ",".join(item.providers), item.key))
    if rows:
        output.table(("SIZE", "TIER", "PROVIDERS", "KEY"), rows)
    where = f" under {args.prefix!r}" if args.prefix else ""
    summary = f"{len(rows)} key(s){where}, {human_size(total)}, listed from {', '.join(listed)}"
    if incomplete:
        summary += f"; {incomplete} not on every provider"
    output.line(summary)
    return 0


async def _delete_one(storage: Storage, key: str, name: str) -> UploadReport:
    began = time.perf_counter()
    try:
        await storage.provider(name).delete(key)
    except Exception as exc:  # reported like the fan-out's delete
        result = ProviderResult(name, ok=False, error=exc, duration_s=time.perf_counter() - began)
    else:
        result = ProviderResult(name, ok=True, duration_s=time.perf_counter() - began)
    return UploadReport(key=key, results={name: result}, duration_s=result.duration_s, operation="delete")


async def rm(storage: Storage, args: argparse.Namespace, output: Output) -> int:
    """Delete every copy (or one provider's); 1 when a copy may remain anywhere."""
    key: str = args.key
    if args.provider:
        storage.provider(args.provider)  # an unknown name is a ConfigError, before any request
        report = await _delete_one(storage, key, args.provider)
    else:
        report = await storage.delete(key)
    remaining = report.failed
    if output.json_mode:
        output.document({
            "key": key,
            "ok": report.all_ok,
            "deleted_from": report.succeeded,
            "may_remain_on": remaining,
            "results": {
                name: {"ok": r.ok, "duration_s": round(r.duration_s, 3),
                       **({"error": error_json(r.error)} if r.error is not None else {})}
                for name, r in report.results.items()
            },
        })
        return 0 if report.all_ok else 1
    for name, result in report.results.items():
        if result.ok:
            output.line(f"{name}: deleted {key!r} (no copy remains there)")
        else:
            assert result.error is not None
            output.line(f"{name}: FAILED, a copy may remain: {one_line(result.error)}")
    if report.all_ok:
        output.line(f"deleted {key!r} from {', '.join(report.succeeded)}")
        return 0
    output.line(f"{key!r} may remain on: {', '.join(remaining)}; run the command again once the cause is fixed")
    return 1


async def presign(storage: Storage, args: argparse.Namespace, output: Output) -> int:
    """The URL alone on stdout (`curl "$(unistore presign KEY)"`); it is a bearer credential
    for `--expires` seconds, so it is printed only here, never logged."""
    url = await storage.presigned_url(args.key, args.expires, args.method, provider=args.provider)
    if output.json_mode:
        expires_at = datetime.fromtimestamp(time.time() + args.expires, UTC).isoformat(timespec="seconds")
        output.document(
            {"key": args.key, "method": args.method, "expires_in": args.expires, "expires_at": expires_at, "url": url}
        )
    else:
        output.line(url)
    return 0
