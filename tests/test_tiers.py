"""Storage tiers (issue 21): `AWS_S3_STORAGE_CLASS`, `AZURE_STORAGE_ACCESS_TIER` and the
per-call `tier=`, on single and multipart uploads, checked with independent clients (boto3 and
the sync Azure SDK); `ObjectInfo.tier` from head and list; the archive-tier download error."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests import servers
from tests.conftest import unique_name
from unistore import ConfigError, ProviderError, Storage
from unistore._errors import Context
from unistore._settings import AzureSettings, S3Settings
from unistore._tiers import GENERIC, for_provider
from unistore.providers import AzureBlobProvider, LocalProvider, MemoryProvider, S3Provider
from unistore.providers._azure_errors import map_error as azure_map_error
from unistore.providers._azure_put import Refused
from unistore.providers._s3_errors import map_error as s3_map_error

SMALL = b"tiered recording " * 64
BIG = os.urandom(1024 * 1024) * 11  # 11 MiB: parts on both test transfers (threshold 5 MiB)


# -- values ----------------------------------------------------------------------------------


def test_generic_names_map_to_each_service() -> None:
    assert {name: (row["s3"], row["azure"]) for name, row in GENERIC.items()} == {
        "hot": ("STANDARD", "Hot"), "cool": ("STANDARD_IA", "Cool"),
        "cold": ("GLACIER_IR", "Cold"), "archive": ("DEEP_ARCHIVE", "Archive"),
    }
    assert for_provider("Cool", "s3", "s3") == "STANDARD_IA"
    assert for_provider("standard_ia", "s3", "s3") == "STANDARD_IA"
    assert for_provider("COOL", "azure", "azure") == "Cool"
    assert for_provider({"s3": "glacier_ir"}, "azure", "azure", default="Hot") == "Hot"
    assert for_provider(None, "s3", "s3", default="STANDARD_IA") == "STANDARD_IA"


def test_a_service_name_for_the_other_service_is_refused_naming_the_mapping() -> None:
    with pytest.raises(ValueError, match=r"unknown tier 'STANDARD_IA' for Azure.*Hot, Cool, Cold, Archive.*mapping"):
        for_provider("STANDARD_IA", "azure", "azure")
    with pytest.raises(ValueError, match=r"tier\['s3'\].*'Hott'.*STANDARD, STANDARD_IA"):
        for_provider({"s3": "Hott"}, "s3", "s3")


def test_settings_canonical_and_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_S3_STORAGE_CLASS", " glacier_ir ")
    monkeypatch.setenv("AZURE_STORAGE_ACCESS_TIER", "cool")
    assert S3Settings().storage_class == "GLACIER_IR"
    assert AzureSettings().access_tier == "Cool"
    monkeypatch.setenv("AWS_S3_STORAGE_CLASS", "")
    assert S3Settings().storage_class is None
    monkeypatch.setenv("AWS_S3_STORAGE_CLASS", "FROZEN")
    refused = r"AWS_S3_STORAGE_CLASS.*'FROZEN'.*STANDARD, STANDARD_IA, ONEZONE_IA"
    with pytest.raises(ConfigError, match=refused) as caught:
        S3Settings()
    assert "AWS_S3_STORAGE_CLASS" in caught.value.variables
    monkeypatch.setenv("AZURE_STORAGE_ACCESS_TIER", "Premium")
    with pytest.raises(ConfigError, match=r"AZURE_STORAGE_ACCESS_TIER.*'Premium'.*Hot, Cool, Cold, Archive"):
        AzureSettings()


# -- memory and local ------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["memory", "local"])
async def test_local_providers_record_the_tier(
    kind: str, make_memory_provider: Callable[..., MemoryProvider], make_local_provider: Callable[..., LocalProvider]
) -> None:
    provider = make_memory_provider() if kind == "memory" else make_local_provider()
    async with Storage([provider]) as storage:
        assert (await storage.upload_bytes(SMALL, "a.bin", tier="Cool")).ok
        assert (await storage.upload_bytes(BIG, "b.bin", tier={provider.name: "archive"})).ok
        assert (await storage.upload_bytes(SMALL, "c.bin")).ok
        assert (await provider.head("a.bin")).tier == "cool"
        assert (await provider.head("b.bin")).tier == "archive"
        assert (await provider.head("c.bin")).tier is None
        listed = {o.key: o.copies[provider.name].tier async for o in storage.list()}
        assert listed == {"a.bin": "cool", "b.bin": "archive", "c.bin": None}


async def test_bad_tier_in_a_call_writes_nothing(tmp_path: Any) -> None:
    first, second = MemoryProvider(name="one"), MemoryProvider(name="two")
    async with Storage([first, second]) as storage:
        with pytest.raises(ValueError, match=r"unknown tier 'tepid'.*hot, cool, cold, archive"):
            await storage.upload_bytes(SMALL, "k", tier="tepid")
        with pytest.raises(ValueError, match=r"tier\['two'\].*'STANDARD_IA'"):
            await storage.upload_bytes(SMALL, "k", tier={"one": "cool", "two": "STANDARD_IA"})
        with pytest.raises(ValueError, match=r"unknown providers \['s4'\].*\['one', 'two'\]"):
            await storage.upload_bytes(SMALL, "k", tier={"s4": "cool"})
        with pytest.raises(ValueError, match="unknown tier"):
            storage.open_writer("k", tier="tepid")
        src = tmp_path / "rec.bin"
        src.write_bytes(BIG)
        with pytest.raises(ValueError, match="unknown tier"):
            await storage.upload_file(src, "k", tier="tepid")
    assert first.objects == {} and second.objects == {}
    assert first.uploads == {} and second.uploads == {}
    with pytest.raises(ValueError, match="unknown tier"):
        MemoryProvider(tier="tepid")


def test_sync_storage_passes_the_tier() -> None:
    from unistore.sync import SyncStorage

    provider = MemoryProvider()
    with SyncStorage(lambda: Storage([provider])) as storage:
        assert storage.upload_bytes(SMALL, "s.bin", tier="cold").ok
        with storage.open_writer("w.bin", tier="hot") as writer:
            writer.write(SMALL)
        with pytest.raises(ValueError, match="unknown tier"):
            storage.upload_bytes(SMALL, "x.bin", tier="tepid")
    assert provider.objects["s.bin"][1].tier == "cold"
    assert provider.objects["w.bin"][1].tier == "hot"
    assert "x.bin" not in provider.objects


# -- archive-tier downloads ------------------------------------------------------------------


def test_s3_archived_object_error_names_restore() -> None:
    from botocore.exceptions import ClientError

    # SeaweedFS serves GLACIER objects like any other (see the README), so S3's answer to a
    # GetObject of an unrestored archived object is built here, as S3 sends it
    refused = ClientError(
        {"Error": {"Code": "InvalidObjectState",
                   "Message": "The operation is not valid for the object's storage class"},
         "ResponseMetadata": {"HTTPStatusCode": 403}},
        "GetObject",
    )
    error = s3_map_error(refused, Context("s3", "GetObject", "rec/a.mp4"), "meetings")
    assert type(error) is ProviderError and not error.transient
    assert error.code == "InvalidObjectState" and error.status == 403
    assert "archive storage class" in str(error)
    assert error.hint is not None
    assert "aws s3api restore-object --bucket meetings --key rec/a.mp4" in error.hint
    assert "RestoreObject" in error.hint


def test_azure_rehydrating_blob_error_says_wait() -> None:
    said = "This operation is not permitted because the blob is being rehydrated."
    refused = Refused(409, "BlobBeingRehydrated", said)
    error = azure_map_error(refused, Context("azure", "Get Blob", "rec/a.mp4"), "connection_string", "meetings")
    assert type(error) is ProviderError and error.code == "BlobBeingRehydrated"
    assert error.hint is not None and "wait for the rehydration" in error.hint


# -- against the servers, checked with independent clients ---------------------------------


def _boto3(server: servers.S3Server) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3", endpoint_url=server.endpoint, aws_access_key_id=server.access_key,
        aws_secret_access_key=server.secret_key, region_name=server.region,
        config=Config(s3={"addressing_style": "path"}),
    )


@pytest.fixture
def s3_sdk(s3_server: servers.S3Server) -> Iterator[Any]:
    client = _boto3(s3_server)
    yield client
    client.close()


def _blob_sdk(server: servers.AzuriteServer, container: str) -> Any:
    from azure.storage.blob import BlobServiceClient

    return BlobServiceClient.from_connection_string(server.connection_string).get_container_client(container)


def _stored_class(client: Any, bucket: str, key: str) -> str | None:
    stored: str | None = client.head_object(Bucket=bucket, Key=key).get("StorageClass")
    return stored


@pytest.mark.servers
async def test_s3_storage_class_by_environment_single_and_multipart(
    monkeypatch: pytest.MonkeyPatch, s3_server: servers.S3Server, s3_sdk: Any
) -> None:
    bucket = unique_name("tier")
    s3_server.create_bucket(bucket)
    for name, value in s3_server.env(bucket).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("STORAGE_UPLOAD_MODE", "s3")
    monkeypatch.setenv("STORAGE_MULTIPART_THRESHOLD", "5MiB")
    monkeypatch.setenv("STORAGE_CHUNK_SIZE", "5MiB")
    monkeypatch.setenv("AWS_S3_STORAGE_CLASS", "standard_ia")
    async with Storage.from_env() as storage:
        assert storage.provider("s3").tier == "STANDARD_IA"  # type: ignore[attr-defined]
        assert (await storage.upload_bytes(SMALL, "env/single.bin")).ok
        assert (await storage.upload_bytes(BIG, "env/multi.bin")).ok
        assert _stored_class(s3_sdk, bucket, "env/single.bin") == "STANDARD_IA"
        assert _stored_class(s3_sdk, bucket, "env/multi.bin") == "STANDARD_IA"
        heads = {key: (await storage.head(key))["s3"] for key in ("env/single.bin", "env/multi.bin")}
        assert {key: info.tier for key, info in heads.items() if info} == {
            "env/single.bin": "STANDARD_IA", "env/multi.bin": "STANDARD_IA",
        }
        listed = {o.key: o.copies["s3"].tier async for o in storage.list("env/")}
        assert listed == {"env/single.bin": "STANDARD_IA", "env/multi.bin": "STANDARD_IA"}
        assert await storage.download_bytes("env/multi.bin") == BIG


@pytest.mark.servers
async def test_s3_storage_class_by_call(make_s3_provider: Callable[..., S3Provider], s3_sdk: Any) -> None:
    provider = make_s3_provider()
    async with Storage([provider]) as storage:
        assert (await storage.upload_bytes(SMALL, "call/single.bin", tier="cold")).ok
        assert (await storage.upload_bytes(BIG, "call/multi.bin", tier={"s3": "ONEZONE_IA"})).ok
        assert (await storage.upload_bytes(SMALL, "call/default.bin")).ok
        async with storage.open_writer("call/writer.bin", tier="GLACIER") as writer:
            await writer.write(BIG)
    assert _stored_class(s3_sdk, provider.bucket, "call/single.bin") == "GLACIER_IR"
    assert _stored_class(s3_sdk, provider.bucket, "call/multi.bin") == "ONEZONE_IA"
    assert _stored_class(s3_sdk, provider.bucket, "call/writer.bin") == "GLACIER"
    # no header sent: nothing stored, which S3 (and boto3) report as STANDARD by omission
    assert _stored_class(s3_sdk, provider.bucket, "call/default.bin") is None
    assert (await provider.head("call/default.bin")).tier == "STANDARD"
    listed = {o.key: o.tier async for o in provider.list("call/")}
    assert listed == {
        "call/default.bin": "STANDARD", "call/multi.bin": "ONEZONE_IA",
        "call/single.bin": "GLACIER_IR", "call/writer.bin": "GLACIER",
    }
    # SeaweedFS serves a GLACIER object at once: no restore to wait for (see the README)
    assert await provider.download_bytes("call/writer.bin") == BIG


@pytest.mark.servers
async def test_s3_bad_tier_writes_nothing(make_s3_provider: Callable[..., S3Provider], s3_sdk: Any) -> None:
    provider = make_s3_provider()
    with pytest.raises(ValueError, match=r"unknown tier 'Cool-ish' for S3"):
        await provider.upload_bytes(BIG, "bad.bin", tier="Cool-ish")
    with pytest.raises(ValueError, match=r"unknown tier 'Hot' for S3|tier\['s3'\]"):
        await provider.upload_bytes(SMALL, "bad.bin", tier={"s3": "Hott"})
    assert s3_sdk.list_objects_v2(Bucket=provider.bucket).get("KeyCount") == 0
    assert s3_sdk.list_multipart_uploads(Bucket=provider.bucket).get("Uploads") in (None, [])


@pytest.mark.servers
async def test_azure_access_tier_by_environment_single_and_multipart(
    monkeypatch: pytest.MonkeyPatch, azurite: servers.AzuriteServer
) -> None:
    container = unique_name("tier")
    azurite.create_container(container)
    for name, value in azurite.env(container).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("STORAGE_UPLOAD_MODE", "azure")
    monkeypatch.setenv("STORAGE_MULTIPART_THRESHOLD", "5MiB")
    monkeypatch.setenv("STORAGE_CHUNK_SIZE", "5MiB")
    monkeypatch.setenv("AZURE_STORAGE_ACCESS_TIER", "COOL")
    sdk = _blob_sdk(azurite, container)
    async with Storage.from_env() as storage:
        assert (await storage.upload_bytes(SMALL, "env/single.bin")).ok
        assert (await storage.upload_bytes(BIG, "env/multi.bin")).ok
        for key in ("env/single.bin", "env/multi.bin"):
            assert sdk.get_blob_client(key).get_blob_properties().blob_tier == "Cool", key
            info = (await storage.head(key))["azure"]
            assert info is not None and info.tier == "Cool"
        listed = {o.key: o.copies["azure"].tier async for o in storage.list("env/")}
        assert listed == {"env/single.bin": "Cool", "env/multi.bin": "Cool"}
    sdk.close()


@pytest.mark.servers
async def test_azure_access_tier_by_call(
    make_azure_provider: Callable[..., AzureBlobProvider], azurite: servers.AzuriteServer
) -> None:
    provider = make_azure_provider()
    sdk = _blob_sdk(azurite, provider.container)
    async with Storage([provider]) as storage:
        assert (await storage.upload_bytes(SMALL, "call/single.bin", tier="cool")).ok
        assert (await storage.upload_bytes(BIG, "call/multi.bin", tier={"azure": "Cold"})).ok
        assert (await storage.upload_bytes(SMALL, "call/default.bin")).ok
        async with storage.open_writer("call/writer.bin", tier="Hot") as writer:
            await writer.write(BIG)
    stored = {key: sdk.get_blob_client(key).get_blob_properties().blob_tier
              for key in ("call/single.bin", "call/multi.bin", "call/default.bin", "call/writer.bin")}
    assert stored == {
        "call/single.bin": "Cool", "call/multi.bin": "Cold", "call/default.bin": "Hot", "call/writer.bin": "Hot",
    }
    listed = {o.key: o.tier async for o in provider.list("call/")}
    assert listed == stored
    sdk.close()


@pytest.mark.servers
async def test_azure_archived_blob_download_names_rehydration(
    make_azure_provider: Callable[..., AzureBlobProvider], azurite: servers.AzuriteServer
) -> None:
    provider = make_azure_provider()
    assert (await provider.upload_bytes(SMALL, "cold/a.mp4", tier="archive")).tier == "Archive"
    sdk = _blob_sdk(azurite, provider.container)
    assert sdk.get_blob_client("cold/a.mp4").get_blob_properties().blob_tier == "Archive"
    sdk.close()
    assert (await provider.head("cold/a.mp4")).tier == "Archive"
    with pytest.raises(ProviderError) as caught:
        await provider.download_bytes("cold/a.mp4")
    error = caught.value
    assert type(error) is ProviderError and error.code == "BlobArchived" and error.status == 409
    assert "Archive tier" in str(error)
    assert error.hint is not None and "Set Blob Tier" in error.hint and "--name cold/a.mp4" in error.hint


@pytest.mark.servers
async def test_azure_bad_tier_writes_nothing(
    make_azure_provider: Callable[..., AzureBlobProvider], azurite: servers.AzuriteServer
) -> None:
    provider = make_azure_provider()
    with pytest.raises(ValueError, match=r"unknown tier 'GLACIER' for Azure"):
        await provider.upload_bytes(BIG, "bad.bin", tier="GLACIER")
    sdk = _blob_sdk(azurite, provider.container)
    assert list(sdk.list_blobs()) == []
    sdk.close()


@pytest.mark.servers
async def test_an_archived_copy_hands_the_read_to_the_other_provider(
    make_azure_provider: Callable[..., AzureBlobProvider], make_s3_provider: Callable[..., S3Provider]
) -> None:
    """The suggested setup's second copy in Archive: reads in that order still succeed, from S3."""
    azure, s3 = make_azure_provider(), make_s3_provider()
    async with Storage([azure, s3], read_order=["azure", "s3"]) as storage:
        report = await storage.upload_bytes(SMALL, "both/a.mp4", tier={"azure": "Archive", "s3": "STANDARD"})
        assert report.ok, report.errors
        assert (await azure.head("both/a.mp4")).tier == "Archive"
        assert await storage.download_bytes("both/a.mp4") == SMALL
        where, info = await storage.locate("both/a.mp4")
        assert where == "azure" and info.tier == "Archive"  # locate only asks who holds it
        with pytest.raises(ProviderError, match="Archive tier"):
            await storage.download_bytes("both/a.mp4", provider="azure")


# -- the command line ------------------------------------------------------------------------


def test_cli_upload_tier_and_ls_column(tmp_path: Any) -> None:
    import json

    from tests.clirun import run_cli

    root = tmp_path / "store"
    env = {"STORAGE_UPLOAD_MODE": "local", "STORAGE_LOCAL_ROOT": str(root)}
    src = tmp_path / "meeting.mp4"
    src.write_bytes(SMALL)
    done = run_cli("upload", str(src), "--key", "rec/a.mp4", "--tier", "COLD", env=env)
    assert done.returncode == 0, done.stderr
    done = run_cli("upload", str(src), "--key", "rec/b.mp4", "--tier", "local=archive", env=env)
    assert done.returncode == 0, done.stderr
    listed = run_cli("ls", "rec/", env=env)
    rows = [row.split() for row in listed.stdout.splitlines()]
    assert rows[0] == ["SIZE", "TIER", "PROVIDERS", "KEY"]
    assert rows[1][2:] == ["cold", "local", "rec/a.mp4"] and rows[2][2:] == ["archive", "local", "rec/b.mp4"]
    as_json = [json.loads(line) for line in run_cli("ls", "--json", env=env).stdout.splitlines()]
    assert [item["tiers"] for item in as_json] == [{"local": "cold"}, {"local": "archive"}]

    for bad in ("tepid", "s3=STANDARD", "local="):
        refused = run_cli("upload", str(src), "--key", "rec/c.mp4", "--tier", bad, env=env)
        assert refused.returncode == 2, (bad, refused.stderr)
        lines = refused.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("unistore upload: ") and "--tier" in lines[0], lines
    assert not (root / "rec" / "c.mp4").exists()


def test_resolve_tiers_per_provider() -> None:
    storage = Storage([MemoryProvider(name="one", tier="cool"), MemoryProvider(name="two")])
    assert storage.resolve_tiers(None) == {"one": "cool", "two": None}
    assert storage.resolve_tiers("Archive") == {"one": "archive", "two": "archive"}
    assert storage.resolve_tiers({"two": "hot"}) == {"one": "cool", "two": "hot"}


@pytest.mark.servers
def test_s3_server_refusing_a_class_is_mapped_with_its_fix(s3_server: servers.S3Server, s3_bucket: str) -> None:
    """unistore sends only classes it knows, but an S3-compatible server may offer fewer: the
    server's own refusal (SeaweedFS: 400 InvalidStorageClass for a class it does not know)."""
    from botocore.exceptions import ClientError

    client = _boto3(s3_server)
    with pytest.raises(ClientError) as refused:
        client.put_object(Bucket=s3_bucket, Key="k", Body=b"x", StorageClass="EXPRESS_ONEZONE")
    client.close()
    error = s3_map_error(refused.value, Context("s3", "PutObject", "k"), s3_bucket)
    assert type(error) is ProviderError and error.code == "InvalidStorageClass" and error.status == 400
    assert error.hint is not None and "AWS_S3_STORAGE_CLASS" in error.hint


def test_django_options_take_the_tier_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    from unistore.contrib._django_options import parse_options

    for name in ("AWS_S3_STORAGE_CLASS", "AZURE_STORAGE_ACCESS_TIER"):
        monkeypatch.delenv(name, raising=False)
    settings, _ = parse_options({
        "STORAGE_UPLOAD_MODE": "both", "AWS_RECORDING_STORAGE_BUCKET_NAME": "recordings",
        "AWS_S3_STORAGE_CLASS": "intelligent_tiering", "AZURE_STORAGE_CONTAINER_NAME": "recordings",
        "AZURE_STORAGE_CONNECTION_STRING": "UseDevelopmentStorage=true", "AZURE_STORAGE_ACCESS_TIER": "cold",
    })
    assert settings.s3 is not None and settings.s3.storage_class == "INTELLIGENT_TIERING"
    assert settings.azure is not None and settings.azure.access_tier == "Cold"
    with pytest.raises(ConfigError, match="AZURE_STORAGE_ACCESS_TIER"):
        parse_options({"AZURE_STORAGE_CONTAINER_NAME": "recordings", "AZURE_STORAGE_ACCESS_TIER": "icy"})


async def test_fan_out_paths_carry_each_providers_tier(tmp_path: Any) -> None:
    """The shared-reader paths (a file read once for all, a writer's channels) pass the tier on."""
    from unistore._multipart import Transfer

    parts = Transfer(threshold=1024 * 1024, chunk_size=1024 * 1024)
    first, second = MemoryProvider(name="one", transfer=parts), MemoryProvider(name="two", tier="cold", transfer=parts)
    src = tmp_path / "rec.bin"
    src.write_bytes(BIG)
    async with Storage([first, second]) as storage:
        assert storage.one_shot_max < len(BIG)
        assert (await storage.upload_file(src, "f.bin", tier={"one": "archive"})).ok
        async with storage.open_writer("w.bin", tier="cool") as writer:
            await writer.write(BIG)
    assert (first.objects["f.bin"][1].tier, second.objects["f.bin"][1].tier) == ("archive", "cold")
    assert (first.objects["w.bin"][1].tier, second.objects["w.bin"][1].tier) == ("cool", "cool")
    assert first.objects["f.bin"][0] == BIG
    assert (first.objects["f.bin"][1].checksum or "").startswith("md5-parts:")  # it went in parts
