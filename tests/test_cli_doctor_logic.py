"""The doctor's decisions, in-process on memory providers that misbehave in one way each: a
listing refused for lack of permission (the round trip decides), a probe read back wrong (the
delete still cleans up), a listing that never answers (bounded by the timeout, the rest skipped)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from unistore._cli_doctor import Check, ProviderDoctor
from unistore._errors import PermissionDeniedError
from unistore.providers import MemoryProvider, ObjectInfo

PREFIX = ".unistore/doctor/"


class ListingDenied(MemoryProvider):
    async def list(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        raise PermissionDeniedError(
            "ListObjectsV2 denied", provider=self.name, code="AccessDenied", hint="grant s3:ListBucket"
        )
        yield  # an async generator, like the real listings


class ReadsBackWrong(MemoryProvider):
    async def download_bytes(self, key: str) -> bytes:
        return (await super().download_bytes(key))[::-1]


class NeverAnswers(MemoryProvider):
    async def list(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        nothing: list[ObjectInfo] = []
        await asyncio.Event().wait()
        for info in nothing:  # an async generator, like the real listings
            yield info


def outcome(checks: list[Check]) -> str:
    """The statuses in check order: credentials, bucket, write, read, delete."""
    return " ".join(c.status for c in checks)


async def test_a_refused_listing_leaves_the_bucket_to_the_round_trip() -> None:
    provider = ListingDenied()
    checks = await ProviderDoctor(provider, 1.0, PREFIX).run()
    assert outcome(checks) == "pass skip pass pass pass"
    bucket = next(c for c in checks if c.check == "bucket")
    assert bucket.detail.startswith("not verified: listing refused (ListObjectsV2 denied (code=AccessDenied))")
    assert not await provider.exists(checks[2].detail.split("'")[1])  # the probe written, then deleted


async def test_a_probe_read_back_wrong_fails_read_and_is_still_deleted() -> None:
    provider = ReadsBackWrong()
    checks = await ProviderDoctor(provider, 1.0, PREFIX).run()
    assert outcome(checks) == "pass pass pass fail pass"
    read = next(c for c in checks if c.check == "read")
    assert read.detail.startswith("read back ") and "differ from the" in read.detail
    assert [info async for info in provider.list(PREFIX)] == []


async def test_a_listing_that_never_answers_is_bounded_and_skips_the_rest() -> None:
    began = time.perf_counter()
    checks = await ProviderDoctor(NeverAnswers(), 0.2, PREFIX).run()
    assert time.perf_counter() - began < 1.0
    assert outcome(checks) == "fail skip skip skip skip"
    assert checks[0].detail == "no answer within 0.2s (--timeout)"
    assert checks[0].seconds is not None and 0.2 <= checks[0].seconds < 0.5
