"""`UploadOptions`: the one list of upload keywords that `Storage`, `SyncStorage` and every
provider take. `**options` must still refuse a misspelt keyword, as a written-out signature
would, before anything is written anywhere."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, get_type_hints

import pytest

from unistore import Storage, UploadOptions
from unistore._types import UPLOAD_OPTION_NAMES
from unistore.providers import MemoryProvider
from unistore.providers._base import BaseProvider
from unistore.providers._protocol import Provider
from unistore.sync import SyncStorage


async def _chunks() -> AsyncIterator[bytes]:
    yield b"recording"


def _storage_calls(storage: Storage, path: Path) -> dict[str, Callable[..., Awaitable[Any]]]:
    async def writer(**kw: Any) -> None:
        async with storage.open_writer("k", **kw) as w:
            await w.write(b"recording")

    return {
        "upload_file": lambda **kw: storage.upload_file(path, "k", **kw),
        "upload_bytes": lambda **kw: storage.upload_bytes(b"recording", "k", **kw),
        "upload_stream": lambda **kw: storage.upload_stream(_chunks(), "k", **kw),
        "open_writer": writer,
    }


@pytest.mark.parametrize("method", ["upload_file", "upload_bytes", "upload_stream", "open_writer"])
async def test_storage_refuses_a_misspelt_option_and_writes_nothing(method: str, tmp_path: Path) -> None:
    source = tmp_path / "rec.bin"
    source.write_bytes(b"recording")
    a, b = MemoryProvider(name="a"), MemoryProvider(name="b")
    storage = Storage([a, b])
    with pytest.raises(TypeError) as err:
        await _storage_calls(storage, source)[method](overwite=False)
    assert f"{method}() got an unexpected keyword argument 'overwite' (did you mean 'overwrite'?)" in str(err.value)
    assert [o async for o in a.list()] == [] and [o async for o in b.list()] == []


@pytest.mark.parametrize("method", ["upload_file", "upload_bytes", "upload_stream"])
async def test_a_provider_refuses_a_misspelt_option(method: str, tmp_path: Path) -> None:
    source = tmp_path / "rec.bin"
    source.write_bytes(b"recording")
    provider = MemoryProvider(name="m")
    calls: dict[str, Callable[..., Awaitable[Any]]] = {
        "upload_file": lambda **kw: provider.upload_file(source, "k", **kw),
        "upload_bytes": lambda **kw: provider.upload_bytes(b"recording", "k", **kw),
        "upload_stream": lambda **kw: provider.upload_stream(_chunks(), "k", **kw),
    }
    with pytest.raises(TypeError, match="'metdata' \\(did you mean 'metadata'\\?\\)"):
        await calls[method](metdata={"a": "b"})
    assert [o async for o in provider.list()] == []
    # the provider-only keyword is accepted where it belongs, and nowhere else
    if method == "upload_stream":
        await calls[method](size_hint=9)
        assert (await provider.head("k")).size == 9
    else:
        with pytest.raises(TypeError, match="size_hint"):
            await calls[method](size_hint=9)


def test_sync_storage_refuses_a_misspelt_option(tmp_path: Path) -> None:
    source = tmp_path / "rec.bin"
    source.write_bytes(b"recording")
    memory = MemoryProvider(name="m")
    with SyncStorage(lambda: Storage([memory])) as storage:
        for call in (
            lambda: storage.upload_file(source, "k", tiers="cool"),  # type: ignore[call-arg]
            lambda: storage.upload_bytes(b"x", "k", tiers="cool"),  # type: ignore[call-arg]
            lambda: storage.upload_stream([b"x"], "k", tiers="cool"),  # type: ignore[call-arg]
            lambda: storage.open_writer("k", tiers="cool"),  # type: ignore[call-arg]
        ):
            with pytest.raises(TypeError, match="'tiers' \\(did you mean 'tier'\\?\\)"):
                call()
        assert storage.upload_bytes(b"x", "k", content_type="video/mp4", tier="cool").ok
    assert memory.objects["k"][1].content_type == "video/mp4"


def test_every_upload_signature_takes_the_one_options_type() -> None:
    """The keyword list is written once: each upload method spells its options as
    `**options: Unpack[UploadOptions]` (plus its own keywords: `delete_local`, `size_hint`)."""
    methods = [
        (Storage, "upload_file"), (Storage, "upload_bytes"), (Storage, "upload_stream"), (Storage, "open_writer"),
        (SyncStorage, "upload_file"), (SyncStorage, "upload_bytes"), (SyncStorage, "upload_stream"),
        (SyncStorage, "open_writer"), (Provider, "upload_file"), (Provider, "upload_bytes"),
        (Provider, "upload_stream"), (BaseProvider, "upload_file"), (BaseProvider, "upload_bytes"),
        (BaseProvider, "upload_stream"),
    ]
    for owner, name in methods:
        params = inspect.signature(getattr(owner, name)).parameters
        var_kw = [p for p in params.values() if p.kind is inspect.Parameter.VAR_KEYWORD]
        assert [p.annotation for p in var_kw] == ["Unpack[UploadOptions]"], (owner, name)
        named = set(params) - {"self", var_kw[0].name}
        assert not named & UPLOAD_OPTION_NAMES, (owner, name, named & UPLOAD_OPTION_NAMES)
    assert set(get_type_hints(UploadOptions)) == UPLOAD_OPTION_NAMES == {
        "content_type", "metadata", "overwrite", "allow_empty", "progress", "tier",
    }
