"""The provider contract (see `unistore/providers/_protocol.py`), run against every backend:
memory, local, S3 (SeaweedFS or MinIO) and Azure (Azurite) in its three auth modes."""

from __future__ import annotations

import asyncio
import hashlib
import os
import ssl
import urllib.request
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from unistore import AlreadyExistsError, EmptySourceError, InvalidKeyError, NotFoundError, ObjectInfo, TransientError
from unistore._multipart import MiB
from unistore.providers._base import BaseProvider

T = 5 * MiB  # the threshold and part size of the test providers (SMALL_TRANSFER)
SIZES = {
    "1B": 1,
    "threshold-1": T - 1,
    "threshold": T,
    "threshold+1": T + 1,
    "3.5parts": int(3.5 * T),
}


def payload(size: int, seed: int = 0) -> bytes:
    block = hashlib.sha256(f"{seed}".encode()).digest() * 4096  # 128 KiB of varied bytes
    return (block * (size // len(block) + 1))[:size]


async def uneven_chunks(data: bytes, sizes: tuple[int, ...] = (1, 7919, 65536, 3 * MiB + 17)) -> AsyncIterator[bytes]:
    pos, i = 0, 0
    while pos < len(data):
        step = sizes[i % len(sizes)]
        yield data[pos : pos + step]
        pos += step
        i += 1
        await asyncio.sleep(0)


def unique(prefix: str = "k") -> str:
    return f"{prefix}/{os.urandom(6).hex()}"


async def assert_stored(provider: BaseProvider, key: str, data: bytes, info: ObjectInfo) -> None:
    assert info.key == key
    assert info.size == len(data)
    assert info.checksum, "every upload reports the digest the service vouched for"
    head = await provider.head(key)
    assert head.size == len(data)
    assert await provider.download_bytes(key) == data


@pytest.mark.parametrize("size", SIZES.values(), ids=SIZES.keys())
async def test_upload_bytes_round_trip(provider: BaseProvider, size: int) -> None:
    data, key = payload(size, size), unique()
    info = await provider.upload_bytes(data, key)
    await assert_stored(provider, key, data, info)


@pytest.mark.parametrize("size", SIZES.values(), ids=SIZES.keys())
async def test_upload_file_round_trip(provider: BaseProvider, tmp_path: Path, size: int) -> None:
    data, key = payload(size, size + 1), unique()
    src = tmp_path / "rec.bin"
    src.write_bytes(data)
    info = await provider.upload_file(src, key)
    await assert_stored(provider, key, data, info)


@pytest.mark.parametrize("size", [1, T + 1, int(3.5 * T)], ids=["1B", "threshold+1", "3.5parts"])
async def test_upload_stream_uneven_chunks(provider: BaseProvider, size: int) -> None:
    data, key = payload(size, 7), unique()
    info = await provider.upload_stream(uneven_chunks(data), key)
    await assert_stored(provider, key, data, info)


async def test_empty_source_refused_before_anything_is_written(provider: BaseProvider, tmp_path: Path) -> None:
    key = unique()
    empty = tmp_path / "empty.bin"
    empty.write_bytes(b"")
    with pytest.raises(EmptySourceError, match="allow_empty"):
        await provider.upload_bytes(b"", key)
    with pytest.raises(EmptySourceError):
        await provider.upload_file(empty, key)
    with pytest.raises(EmptySourceError):
        await provider.upload_stream(uneven_chunks(b""), key)
    assert not await provider.exists(key)


async def test_empty_object_on_purpose(provider: BaseProvider) -> None:
    key = unique()
    info = await provider.upload_bytes(b"", key, allow_empty=True)
    assert info.size == 0
    assert await provider.download_bytes(key) == b""


async def test_content_type_and_metadata_round_trip(provider: BaseProvider, tmp_path: Path) -> None:
    key = unique()
    await provider.upload_bytes(b"x" * 10, key, content_type="video/mp4", metadata={"meeting_id": "m-42", "bot": "b1"})
    head = await provider.head(key)
    assert head.content_type == "video/mp4"
    assert {k.lower(): v for k, v in head.metadata.items()} == {"meeting_id": "m-42", "bot": "b1"}
    # multipart keeps them too
    key2 = unique()
    await provider.upload_bytes(payload(T + 1), key2, content_type="audio/wav", metadata={"part": "yes"})
    head2 = await provider.head(key2)
    assert head2.content_type == "audio/wav"
    assert {k.lower(): v for k, v in head2.metadata.items()} == {"part": "yes"}
    # upload_file guesses the type from the name
    src = tmp_path / "meeting.mp4"
    src.write_bytes(b"abc")
    key3 = unique() + ".mp4"
    await provider.upload_file(src, key3)
    assert (await provider.head(key3)).content_type == "video/mp4"


async def test_list_prefixes_and_pages(provider: BaseProvider) -> None:
    base = unique("list")
    keys = [f"{base}/a/{i}" for i in range(5)] + [f"{base}/b/{i}" for i in range(3)]
    await asyncio.gather(*(provider.upload_bytes(b"v" + k.encode(), k) for k in keys))
    if hasattr(provider, "list_page_size"):
        provider.list_page_size = 2  # force several pages on services that page
    listed = [info.key async for info in provider.list(f"{base}/a/")]
    assert sorted(listed) == sorted(keys[:5])
    everything = {info.key: info.size async for info in provider.list(base)}
    assert set(everything) == set(keys)
    assert all(size == len(b"v" + k.encode()) for k, size in everything.items())
    assert [i async for i in provider.list(f"{base}/nothing-here/")] == []


async def test_head_exists_delete(provider: BaseProvider) -> None:
    key = unique()
    with pytest.raises(NotFoundError):
        await provider.head(key)
    assert not await provider.exists(key)
    await provider.delete(key)  # deleting a missing key is fine
    await provider.upload_bytes(b"data", key)
    assert await provider.exists(key)
    await provider.delete(key)
    await provider.delete(key)  # idempotent
    assert not await provider.exists(key)
    with pytest.raises(NotFoundError):
        await provider.download_bytes(key)


async def test_download_file(provider: BaseProvider, tmp_path: Path) -> None:
    data, key = payload(int(2.5 * T), 3), unique()
    await provider.upload_bytes(data, key)
    dest = tmp_path / "out" / "copy.bin"
    dest.parent.mkdir()
    info = await provider.download_file(key, dest)
    assert info.size == len(data)
    assert dest.read_bytes() == data
    with pytest.raises(NotFoundError):
        await provider.download_file(unique(), tmp_path / "out" / "missing.bin")
    assert sorted(p.name for p in dest.parent.iterdir()) == ["copy.bin"], "no temporary file left"


async def test_iter_bytes_streams(provider: BaseProvider) -> None:
    data, key = payload(T + 3), unique()
    await provider.upload_bytes(data, key)
    chunks = [c async for c in provider.iter_bytes(key)]
    assert b"".join(chunks) == data


@pytest.mark.parametrize("size", [10, T + 1], ids=["single", "multipart"])
async def test_no_overwrite_is_a_conditional_create(provider: BaseProvider, size: int) -> None:
    key = unique()
    await provider.upload_bytes(b"original", key)
    with pytest.raises(AlreadyExistsError):
        await provider.upload_bytes(payload(size), key, overwrite=False)
    assert await provider.download_bytes(key) == b"original"
    fresh = unique()
    await provider.upload_bytes(payload(size), fresh, overwrite=False)
    assert await provider.download_bytes(fresh) == payload(size)


async def test_default_overwrite_follows_the_provider_setting(make_provider: Callable[..., BaseProvider]) -> None:
    async with make_provider(overwrite=False) as provider:
        key = unique()
        await provider.upload_bytes(b"one", key)
        with pytest.raises(AlreadyExistsError):
            await provider.upload_bytes(b"two", key)
        await provider.upload_bytes(b"three", key, overwrite=True)
        assert await provider.download_bytes(key) == b"three"


async def test_failed_stream_leaves_nothing(provider: BaseProvider) -> None:
    key = unique()

    async def broken() -> AsyncIterator[bytes]:
        for _ in range(3):
            yield payload(T, 1)
        raise OSError("recorder crashed")

    with pytest.raises(OSError, match="recorder crashed"):
        await provider.upload_stream(broken(), key)
    assert not await provider.exists(key)


async def test_cancelled_upload_leaves_nothing(provider: BaseProvider) -> None:
    key = unique()
    second_part = asyncio.Event()

    async def slow() -> AsyncIterator[bytes]:
        yield payload(T, 1)
        yield payload(T, 2)
        second_part.set()
        await asyncio.sleep(3600)
        yield b"never"

    task = asyncio.create_task(provider.upload_stream(slow(), key))
    await asyncio.wait_for(second_part.wait(), 30)
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not await provider.exists(key)


async def test_progress_reports_every_byte(provider: BaseProvider) -> None:
    seen: list[tuple[str, int, int | None]] = []
    data = payload(int(2.5 * T))
    await provider.upload_bytes(data, unique(), progress=lambda *a: seen.append(a))
    assert seen, "progress was called"
    assert all(name == provider.name for name, _, _ in seen)
    done = [d for _, d, _ in seen]
    assert done == sorted(done) and done[-1] == len(data)


async def test_invalid_keys_are_refused(provider: BaseProvider) -> None:
    for key in ["", "a\x00b", "line\nbreak", "x" * 1025]:
        with pytest.raises(InvalidKeyError):
            await provider.upload_bytes(b"data", key)


async def test_presigned_get_with_a_plain_http_client(provider: BaseProvider, ca_file: str | None) -> None:
    key = unique() + ".txt"
    await provider.upload_bytes(b"signed bytes", key)
    url = await provider.presigned_url(key, expires_in=300)
    assert url
    if provider.name == "memory":
        assert url.startswith("memory://")
        return
    context = ssl.create_default_context(cafile=ca_file) if url.startswith("https") else None

    def fetch() -> bytes:
        with urllib.request.urlopen(url, timeout=10, context=context) as response:
            body: bytes = response.read()
            return body

    assert await asyncio.to_thread(fetch) == b"signed bytes"


# -- one behaviour on every provider (issue 15: the drifts of the per-provider pipelines) ----


@pytest.mark.parametrize("size", [1, int(1.5 * T)], ids=["single-put", "parts"])
async def test_etag_has_one_form(provider: BaseProvider, size: int) -> None:
    """`ObjectInfo.etag` is unquoted, and the same from the upload, `head` and `list`."""
    key = unique("etag")
    info = await provider.upload_bytes(payload(size), key)
    head = await provider.head(key)
    listed = [item async for item in provider.list(key)]
    assert info.etag and '"' not in info.etag and not info.etag.startswith("W/")
    assert head.etag == info.etag
    assert [item.etag for item in listed] == [info.etag]


async def test_short_download_is_an_incomplete_download(
    provider: BaseProvider, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A response shorter than the object is the same transient `IncompleteDownload` on every
    provider, and leaves no file behind."""
    key = unique("short")
    await provider.upload_bytes(b"twelve bytes", key)
    real_head = provider.head

    async def longer(k: str) -> ObjectInfo:
        info = await real_head(k)
        return ObjectInfo(key=info.key, size=info.size + 1, etag=info.etag, checksum=info.checksum)

    monkeypatch.setattr(provider, "head", longer)
    folder = tmp_path / "downloads"
    folder.mkdir()
    with pytest.raises(TransientError) as caught:
        await provider.download_file(key, folder / "copy.bin")
    assert caught.value.code == "IncompleteDownload" and caught.value.provider == provider.name
    assert list(folder.iterdir()) == [], "the temporary file was removed"


async def test_use_after_aclose_reopens(provider: BaseProvider) -> None:
    """`aclose()` releases the provider's connections; it is idempotent, and the next call
    opens new ones (the `Provider` protocol's rule, the same on every backend)."""
    key = unique("reopen")
    await provider.upload_bytes(b"before", key)
    await provider.aclose()
    await provider.aclose()
    assert await provider.download_bytes(key) == b"before"
    await provider.upload_bytes(b"after", key)
    assert await provider.download_bytes(key) == b"after"
