"""Part sizing against the services' caps, the buffer budget, retry/backoff, redaction."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import random
import zlib

import pytest

from unistore import AuthenticationError, TransientError, _integrity
from unistore._budget import BufferBudget
from unistore._logging import redact
from unistore._multipart import MiB, PartLimits, PartSizer
from unistore._retry import RetryPolicy, retry

GiB = 1024 * MiB
TiB = 1024 * GiB
S3 = PartLimits(max_parts=10_000, min_part=5 * MiB, max_part=5 * GiB)
AZURE = PartLimits(max_parts=50_000, min_part=1, max_part=4000 * MiB)


def parts_for(size: int, sizer: PartSizer) -> int:
    n, total = 0, 0
    while total < size:
        n += 1
        total += sizer.size(n)
    return n


@pytest.mark.parametrize("limits", [S3, AZURE], ids=["s3", "azure"])
@pytest.mark.parametrize("size", [1 * GiB, 100 * GiB, 1 * TiB, 4 * TiB], ids=["1G", "100G", "1T", "4T"])
def test_known_size_stays_under_the_part_cap(limits: PartLimits, size: int) -> None:
    sizer = PartSizer(8 * MiB, limits, size)
    assert parts_for(size, sizer) <= limits.max_parts
    assert sizer.size(1) >= 8 * MiB and sizer.size(1) <= limits.max_part


@pytest.mark.parametrize("limits", [S3, AZURE], ids=["s3", "azure"])
def test_unknown_length_grows_so_a_long_meeting_never_hits_the_cap(limits: PartLimits) -> None:
    sizer = PartSizer(8 * MiB, limits)
    sizes = [sizer.size(n) for n in range(1, limits.max_parts + 1)]
    assert sizes[0] == 8 * MiB
    assert sizes == sorted(sizes), "sizes never shrink"
    assert all(limits.min_part <= s <= limits.max_part for s in sizes)
    assert sum(sizes) >= 4 * TiB, "the cap is reached only past S3's 5 TiB object limit scale"


def test_s3_minimum_part_is_respected() -> None:
    assert PartSizer(1 * MiB, S3).size(1) == 5 * MiB


async def test_budget_blocks_until_released() -> None:
    budget = BufferBudget(10)
    await budget.acquire(6)
    waiter = asyncio.create_task(budget.acquire(6))
    for _ in range(5):
        await asyncio.sleep(0)
    assert not waiter.done()
    budget.release(6)
    await asyncio.wait_for(waiter, 1)
    assert budget.held == 6
    budget.release(6)
    assert budget.held == 0


async def test_budget_grants_an_oversized_request_alone() -> None:
    budget = BufferBudget(10)
    await asyncio.wait_for(budget.acquire(50), 1)
    assert budget.held == 50
    budget.release(50)


async def test_budget_cancelled_waiter_gives_nothing_away() -> None:
    budget = BufferBudget(10)
    await budget.acquire(10)
    waiter = asyncio.create_task(budget.acquire(5))
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    budget.release(10)
    assert budget.held == 0
    await asyncio.wait_for(budget.acquire(10), 1)


async def test_budget_is_shared_across_event_loops_in_threads() -> None:
    budget = BufferBudget(4)
    await budget.acquire(4)

    def other_loop() -> int:
        async def take() -> int:
            await budget.acquire(4)
            budget.release(4)
            return 1

        return asyncio.run(take())

    thread_result = asyncio.create_task(asyncio.to_thread(other_loop))
    await asyncio.sleep(0.05)
    assert not thread_result.done()
    budget.release(4)
    assert await asyncio.wait_for(thread_result, 5) == 1


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    async def sleep(self, delay: float) -> None:
        self.sleeps.append(delay)
        self.now += delay

    def __call__(self) -> float:
        return self.now


def policy(clock: FakeClock, **kw: float) -> RetryPolicy:
    rng = random.Random(7)
    return RetryPolicy(sleep=clock.sleep, rand=rng.random, clock=clock, **kw)  # type: ignore[arg-type]


async def test_retry_transient_until_success() -> None:
    clock, calls = FakeClock(), []

    async def op() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise TransientError("503", provider="p", status=503)
        return "ok"

    assert await retry(op, policy(clock, attempts=5), "op") == "ok"
    assert len(calls) == 3 and len(clock.sleeps) == 2
    assert all(0 <= d <= 5.0 for d in clock.sleeps)


async def test_retry_gives_up_after_attempts_and_says_so() -> None:
    clock = FakeClock()

    async def op() -> None:
        raise TransientError("SlowDown", provider="s3", code="SlowDown")

    with pytest.raises(TransientError, match=r"gave up after 4 attempt\(s\)"):
        await retry(op, policy(clock, attempts=4), "op")
    assert len(clock.sleeps) == 3


async def test_retry_respects_the_deadline() -> None:
    clock = FakeClock()

    async def op() -> None:
        clock.now += 4.0  # each attempt takes 4 s
        raise TransientError("timeout", provider="s3")

    with pytest.raises(TransientError):
        await retry(op, policy(clock, attempts=100, deadline=10.0), "op")
    assert clock.now < 10.0 + 5.0 + 4.0


async def test_permanent_errors_are_not_retried() -> None:
    clock, calls = FakeClock(), []

    async def op() -> None:
        calls.append(1)
        raise AuthenticationError("bad key", provider="s3")

    with pytest.raises(AuthenticationError):
        await retry(op, policy(clock), "op")
    assert calls == [1] and clock.sleeps == []


def test_backoff_grows_and_is_capped() -> None:
    p = RetryPolicy(base_delay=0.1, max_delay=2.0, rand=lambda: 1.0)
    assert [p.delay(i) for i in range(6)] == [0.1, 0.2, 0.4, 0.8, 1.6, 2.0]


def test_redact() -> None:
    text = (
        "DefaultEndpointsProtocol=https;AccountName=a;AccountKey=c2VjcmV0a2V5;EndpointSuffix=x "
        "https://a.blob.core.windows.net/c/b?sv=2021&sig=abc%2Fdef&se=1 "
        "http://s3/b/k?X-Amz-Credential=AKIA%2F1&X-Amz-Signature=deadbeef"
    )
    out = redact(text)
    for secret in ("c2VjcmV0a2V5", "abc%2Fdef", "deadbeef", "AKIA%2F1"):
        assert secret not in out
    assert "AccountName=a" in out and "sv=2021" in out


def test_digest_kind_of_a_fan_out_costs_least_in_all() -> None:
    s3: tuple[_integrity.Kind, ...] = ("crc32", "md5")
    azure_md5: tuple[_integrity.Kind, ...] = ("md5",)
    azure: tuple[_integrity.Kind, ...] = ("crc64", "md5")
    assert _integrity.fanout_kind([s3]) == "crc32"
    assert _integrity.fanout_kind([s3, s3]) == "crc32"
    assert _integrity.fanout_kind([s3, azure_md5]) == "md5", "an MD5-only Azure: one MD5 pass serves both"
    assert _integrity.fanout_kind([azure_md5, s3]) == "md5"
    # CRC32 for S3 plus Azure's own CRC-64 costs far less than one MD5 for both
    assert _integrity.fanout_kind([s3, azure]) == "crc32"
    assert _integrity.fanout_kind([azure, s3]) == "crc64"
    assert _integrity.fanout_kind([azure, azure]) == "crc64"
    assert _integrity.fanout_kind([("md5",), ("crc32",)]) == "md5"
    assert _integrity.fanout_kind([]) is None


def test_azure_crc64_is_crc64_nvme() -> None:
    # the catalogue's check value of CRC-64/NVME, and the x-ms-content-crc64 Azure documents
    # for "Hello World" (little-endian bytes, base64)
    assert int.from_bytes(_integrity.crc64(b"123456789"), "little") == 0xAE8B14860A799888
    assert _integrity.b64(_integrity.crc64(b"Hello World")) == "YeJLfssylmU="
    assert _integrity.crc64(memoryview(b"Hello World")) == _integrity.digest("crc64", b"Hello World")
    assert _integrity.parts_label("crc64", [_integrity.crc64(b"a")]).startswith("crc64-parts:")


def test_digest_kinds_and_their_labels() -> None:
    data = b"recording"
    assert _integrity.digest("md5", data) == hashlib.md5(data).digest()
    assert _integrity.digest("crc32", data) == zlib.crc32(data).to_bytes(4, "big")
    assert _integrity.label("crc32", _integrity.crc32(data)) == "crc32:" + format(zlib.crc32(data), "08x")
    # S3's composite: CRC32 over the concatenated binary part CRC32s (matches what SeaweedFS reports)
    part = base64.b64decode("RrqPHw==")
    assert _integrity.composite_crc32([part]) == "ZuEqSg==-1"
    assert _integrity.parts_label("crc32", [part]) == "crc32-parts:ZuEqSg==-1"
    assert _integrity.parts_label("md5", [hashlib.md5(b"a").digest()]).endswith("-1")
