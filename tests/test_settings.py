"""Settings: every DESIGN variable and default, invalid environments, and secrets kept out of
every string."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from unistore import AzureSettings, ConfigError, S3Settings, StorageSettings
from unistore._settings import _env_name, parse_upload_mode, settings_table

MiB = 1024 * 1024
ALL_VARS = [
    "STORAGE_UPLOAD_MODE", "STORAGE_REQUIRE", "STORAGE_LOCAL_ROOT", "STORAGE_MULTIPART_THRESHOLD",
    "STORAGE_CHUNK_SIZE", "STORAGE_MAX_CONCURRENCY", "STORAGE_MAX_BUFFER_BYTES", "STORAGE_OVERWRITE",
    "STORAGE_RETRY_ATTEMPTS", "STORAGE_RETRY_DEADLINE", "STORAGE_CONNECT_TIMEOUT", "STORAGE_READ_TIMEOUT",
    "STORAGE_UPLOAD_TIMEOUT", "STORAGE_MIN_SEND_RATE", "STORAGE_GC_FREEZE", "STORAGE_READ_ORDER",
    "AWS_RECORDING_STORAGE_BUCKET_NAME", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
    "AWS_ENDPOINT_URL", "AWS_DEFAULT_REGION", "AWS_S3_ADDRESSING_STYLE", "AWS_REQUEST_CHECKSUM_CALCULATION",
    "AWS_S3_CHECKSUM", "AWS_S3_STORAGE_CLASS",
    "AZURE_STORAGE_CONTAINER_NAME", "AZURE_STORAGE_ACCOUNT_NAME", "AZURE_STORAGE_CONNECTION_STRING",
    "AZURE_STORAGE_ACCOUNT_KEY", "AZURE_STORAGE_ACCOUNT_URL", "AZURE_CLIENT_ID", "AZURE_STORAGE_CHECKSUM",
    "AZURE_STORAGE_ACCESS_TIER",
]
SECRET_KEY = "SECRETsecretSECRET/abc+123=="
ACCOUNT_KEY = "QUNDT1VOVEtFWWFjY291bnRrZXlBQ0NPVU5US0VZ"
SESSION_TOKEN = "SESSIONtokenVALUE123"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ALL_VARS:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_defaults(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("AWS_RECORDING_STORAGE_BUCKET_NAME", "recordings")
    s = StorageSettings()
    assert s.upload_mode == "s3" and s.providers == ("s3",)
    assert s.require == "all"
    assert s.local_root == Path("./storage")
    assert s.multipart_threshold == 16 * MiB
    assert s.chunk_size == 8 * MiB
    assert s.max_concurrency == 4
    assert s.max_buffer_bytes == 256 * MiB
    assert s.overwrite is True
    assert s.upload_timeout is None
    assert s.min_send_rate == 256 * 1024
    assert s.s3 is not None and s.azure is None
    assert s.s3.bucket == "recordings"
    assert s.s3.region == "us-east-1"
    assert s.s3.access_key_id is None and s.s3.secret_access_key is None and s.s3.session_token is None
    assert s.s3.endpoint_url is None
    assert s.s3.effective_addressing_style == "auto"


def test_every_variable_is_read(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    env = {
        "STORAGE_UPLOAD_MODE": "both", "STORAGE_REQUIRE": "any", "STORAGE_LOCAL_ROOT": str(tmp_path),
        "STORAGE_MULTIPART_THRESHOLD": "32MiB", "STORAGE_CHUNK_SIZE": "10485760",
        "STORAGE_MAX_CONCURRENCY": "6", "STORAGE_MAX_BUFFER_BYTES": "1GiB", "STORAGE_OVERWRITE": "false",
        "STORAGE_RETRY_ATTEMPTS": "7", "STORAGE_RETRY_DEADLINE": "30", "STORAGE_CONNECT_TIMEOUT": "3",
        "STORAGE_READ_TIMEOUT": "20", "STORAGE_UPLOAD_TIMEOUT": "600", "STORAGE_MIN_SEND_RATE": "1MiB",
        "AWS_RECORDING_STORAGE_BUCKET_NAME": "rec-bucket", "AWS_ACCESS_KEY_ID": "AKIAEXAMPLE",
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "AWS_SESSION_TOKEN": SESSION_TOKEN,
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9000", "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_S3_ADDRESSING_STYLE": "virtual", "AWS_REQUEST_CHECKSUM_CALCULATION": "when_supported",
        "AZURE_STORAGE_CONTAINER_NAME": "recordings", "AZURE_STORAGE_ACCOUNT_NAME": "acct1",
        "AZURE_STORAGE_ACCOUNT_KEY": ACCOUNT_KEY, "AZURE_STORAGE_ACCOUNT_URL": "http://127.0.0.1:10000/acct1",
        "AZURE_CLIENT_ID": "client-123",
    }
    for k, v in env.items():
        clean_env.setenv(k, v)
    s = StorageSettings()
    assert s.providers == ("s3", "azure") and s.require == "any" and s.local_root == tmp_path
    assert (s.multipart_threshold, s.chunk_size, s.max_buffer_bytes) == (32 * MiB, 10 * MiB, 1024 * MiB)
    assert (s.max_concurrency, s.overwrite, s.retry_attempts) == (6, False, 7)
    assert (s.retry_deadline, s.connect_timeout, s.read_timeout, s.upload_timeout) == (30, 3, 20, 600)
    assert s.min_send_rate == MiB
    assert s.s3 is not None and s.azure is not None
    assert s.s3.bucket == "rec-bucket" and s.s3.access_key_id == "AKIAEXAMPLE"
    assert s.s3.secret_access_key is not None and s.s3.secret_access_key.get_secret_value() == SECRET_KEY
    assert s.s3.session_token is not None and s.s3.session_token.get_secret_value() == SESSION_TOKEN
    assert s.s3.endpoint_url == "http://127.0.0.1:9000" and s.s3.region == "eu-west-1"
    assert s.s3.effective_addressing_style == "virtual" and s.s3.checksum_calculation == "when_supported"
    assert s.azure.container == "recordings" and s.azure.account_name == "acct1"
    assert s.azure.auth_mode == "account_key" and s.azure.client_id == "client-123"
    assert s.azure.effective_account_url == "http://127.0.0.1:10000/acct1"


def test_custom_endpoint_defaults_to_path_style(clean_env: pytest.MonkeyPatch) -> None:
    s3 = S3Settings(bucket="abc", endpoint_url="http://127.0.0.1:8333")
    assert s3.effective_addressing_style == "path"


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"AZURE_STORAGE_ACCOUNT_NAME": "acct1"}, "managed_identity"),
        ({"AZURE_STORAGE_CONNECTION_STRING": "UseDevelopmentStorage=true"}, "connection_string"),
        (
            {"AZURE_STORAGE_CONNECTION_STRING": f"AccountName=acct1;AccountKey={ACCOUNT_KEY}"},
            "connection_string",
        ),
        ({"AZURE_STORAGE_ACCOUNT_NAME": "acct1", "AZURE_STORAGE_ACCOUNT_KEY": ACCOUNT_KEY}, "account_key"),
    ],
)
def test_azure_auth_modes(clean_env: pytest.MonkeyPatch, env: dict[str, str], expected: str) -> None:
    clean_env.setenv("STORAGE_UPLOAD_MODE", "azure")
    clean_env.setenv("AZURE_STORAGE_CONTAINER_NAME", "recordings")
    for k, v in env.items():
        clean_env.setenv(k, v)
    s = StorageSettings()
    assert s.azure is not None and s.azure.auth_mode == expected
    if expected == "managed_identity":
        assert s.azure.effective_account_url == "https://acct1.blob.core.windows.net"


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("s3", ("s3",)), ("azure", ("azure",)), ("both", ("s3", "azure")), ("BOTH", ("s3", "azure")),
        ("local", ("local",)), ("memory", ("memory",)), ("all", ("s3", "azure", "local")),
        ("s3,azure,local", ("s3", "azure", "local")), (" azure , s3 ", ("azure", "s3")), ("both,s3", ("s3", "azure")),
    ],
)
def test_upload_modes(mode: str, expected: tuple[str, ...]) -> None:
    assert parse_upload_mode(mode) == expected


S3_OK = {"AWS_RECORDING_STORAGE_BUCKET_NAME": "recordings"}
AZ_OK = {"AZURE_STORAGE_CONTAINER_NAME": "recordings", "AZURE_STORAGE_ACCOUNT_NAME": "acct1"}

INVALID = [
    ("unknown-mode", {"STORAGE_UPLOAD_MODE": "azrue"}, "STORAGE_UPLOAD_MODE", "did you mean 'azure'"),
    ("empty-mode", {"STORAGE_UPLOAD_MODE": " , "}, "STORAGE_UPLOAD_MODE", "empty"),
    ("s3-no-bucket", {"STORAGE_UPLOAD_MODE": "s3"}, "AWS_RECORDING_STORAGE_BUCKET_NAME", "required"),
    ("both-no-bucket", {"STORAGE_UPLOAD_MODE": "both", **AZ_OK}, "AWS_RECORDING_STORAGE_BUCKET_NAME", "required"),
    ("azure-no-container", {"STORAGE_UPLOAD_MODE": "azure", "AZURE_STORAGE_ACCOUNT_NAME": "acct1"},
     "AZURE_STORAGE_CONTAINER_NAME", "required"),
    ("azure-no-auth", {"STORAGE_UPLOAD_MODE": "azure", "AZURE_STORAGE_CONTAINER_NAME": "rec"},
     "AZURE_STORAGE_ACCOUNT_NAME", "no way to authenticate"),
    ("key-without-account", {"STORAGE_UPLOAD_MODE": "azure", "AZURE_STORAGE_CONTAINER_NAME": "rec",
                             "AZURE_STORAGE_ACCOUNT_KEY": ACCOUNT_KEY}, "AZURE_STORAGE_ACCOUNT_NAME", "without"),
    ("connstr-and-key", {"STORAGE_UPLOAD_MODE": "azure", "AZURE_STORAGE_CONTAINER_NAME": "rec",
                         "AZURE_STORAGE_CONNECTION_STRING": "UseDevelopmentStorage=true",
                         "AZURE_STORAGE_ACCOUNT_NAME": "devstoreaccount1",
                         "AZURE_STORAGE_ACCOUNT_KEY": ACCOUNT_KEY}, "AZURE_STORAGE_ACCOUNT_KEY", "both set"),
    ("connstr-malformed", {"STORAGE_UPLOAD_MODE": "azure", "AZURE_STORAGE_CONTAINER_NAME": "rec",
                           "AZURE_STORAGE_CONNECTION_STRING": "this is not one"},
     "AZURE_STORAGE_CONNECTION_STRING", "malformed"),
    ("connstr-incomplete", {"STORAGE_UPLOAD_MODE": "azure", "AZURE_STORAGE_CONTAINER_NAME": "rec",
                            "AZURE_STORAGE_CONNECTION_STRING": "AccountName=acct1;EndpointSuffix=core.windows.net"},
     "AZURE_STORAGE_CONNECTION_STRING", "incomplete"),
    ("connstr-other-account", {"STORAGE_UPLOAD_MODE": "azure", "AZURE_STORAGE_CONTAINER_NAME": "rec",
                               "AZURE_STORAGE_ACCOUNT_NAME": "other1",
                               "AZURE_STORAGE_CONNECTION_STRING": f"AccountName=acct1;AccountKey={ACCOUNT_KEY}"},
     "AZURE_STORAGE_ACCOUNT_NAME", "another account"),
    ("bad-account-name", {"STORAGE_UPLOAD_MODE": "azure", "AZURE_STORAGE_CONTAINER_NAME": "rec",
                          "AZURE_STORAGE_ACCOUNT_NAME": "Bad_Account"}, "AZURE_STORAGE_ACCOUNT_NAME", "3-24"),
    ("bad-container", {"STORAGE_UPLOAD_MODE": "azure", **AZ_OK, "AZURE_STORAGE_CONTAINER_NAME": "Rec_Ordings"},
     "AZURE_STORAGE_CONTAINER_NAME", "container name"),
    ("container-double-hyphen", {"STORAGE_UPLOAD_MODE": "azure", **AZ_OK, "AZURE_STORAGE_CONTAINER_NAME": "a--b"},
     "AZURE_STORAGE_CONTAINER_NAME", "container name"),
    ("bad-bucket-upper", {"AWS_RECORDING_STORAGE_BUCKET_NAME": "MyBucket"}, "AWS_RECORDING_STORAGE_BUCKET_NAME",
     "bucket name"),
    ("bad-bucket-short", {"AWS_RECORDING_STORAGE_BUCKET_NAME": "ab"}, "AWS_RECORDING_STORAGE_BUCKET_NAME", "3-63"),
    ("bad-bucket-ip", {"AWS_RECORDING_STORAGE_BUCKET_NAME": "192.168.1.1"}, "AWS_RECORDING_STORAGE_BUCKET_NAME",
     "IP address"),
    ("bad-bucket-dots", {"AWS_RECORDING_STORAGE_BUCKET_NAME": "a..b"}, "AWS_RECORDING_STORAGE_BUCKET_NAME",
     "adjacent"),
    ("half-key-pair", {**S3_OK, "AWS_ACCESS_KEY_ID": "AKIA"}, "AWS_SECRET_ACCESS_KEY", "missing"),
    ("secret-without-id", {**S3_OK, "AWS_SECRET_ACCESS_KEY": SECRET_KEY}, "AWS_ACCESS_KEY_ID", "missing"),
    ("bad-endpoint", {**S3_OK, "AWS_ENDPOINT_URL": "localhost:9000"}, "AWS_ENDPOINT_URL", "http"),
    ("bad-style", {**S3_OK, "AWS_S3_ADDRESSING_STYLE": "sideways"}, "AWS_S3_ADDRESSING_STYLE", "path"),
    ("bad-require", {**S3_OK, "STORAGE_REQUIRE": "most"}, "STORAGE_REQUIRE", "all"),
    ("threshold-text", {**S3_OK, "STORAGE_MULTIPART_THRESHOLD": "lots"}, "STORAGE_MULTIPART_THRESHOLD", ""),
    ("threshold-zero", {**S3_OK, "STORAGE_MULTIPART_THRESHOLD": "0"}, "STORAGE_MULTIPART_THRESHOLD", "at least"),
    ("chunk-too-small", {**S3_OK, "STORAGE_CHUNK_SIZE": "1MiB"}, "STORAGE_CHUNK_SIZE", "5 MiB"),
    ("chunk-negative", {**S3_OK, "STORAGE_CHUNK_SIZE": "-5"}, "STORAGE_CHUNK_SIZE", ""),
    ("concurrency-zero", {**S3_OK, "STORAGE_MAX_CONCURRENCY": "0"}, "STORAGE_MAX_CONCURRENCY", "at least"),
    ("concurrency-text", {**S3_OK, "STORAGE_MAX_CONCURRENCY": "many"}, "STORAGE_MAX_CONCURRENCY", "integer"),
    ("buffer-below-chunk", {**S3_OK, "STORAGE_MAX_BUFFER_BYTES": "6MiB"}, "STORAGE_MAX_BUFFER_BYTES", "one part"),
    ("overwrite-text", {**S3_OK, "STORAGE_OVERWRITE": "maybe"}, "STORAGE_OVERWRITE", "bool"),
    ("attempts-zero", {**S3_OK, "STORAGE_RETRY_ATTEMPTS": "0"}, "STORAGE_RETRY_ATTEMPTS", "at least"),
    ("timeout-negative", {**S3_OK, "STORAGE_READ_TIMEOUT": "-1"}, "STORAGE_READ_TIMEOUT", "positive"),
    ("upload-timeout-zero", {**S3_OK, "STORAGE_UPLOAD_TIMEOUT": "0"}, "STORAGE_UPLOAD_TIMEOUT", "positive"),
    ("account-url-bad", {"STORAGE_UPLOAD_MODE": "azure", **AZ_OK, "AZURE_STORAGE_ACCOUNT_URL": "blob.example"},
     "AZURE_STORAGE_ACCOUNT_URL", "http"),
]


@pytest.mark.parametrize(("env", "variable", "text"), [c[1:] for c in INVALID], ids=[c[0] for c in INVALID])
def test_invalid_environment_names_the_variable(
    clean_env: pytest.MonkeyPatch, env: dict[str, str], variable: str, text: str
) -> None:
    for k, v in env.items():
        clean_env.setenv(k, v)
    with pytest.raises(ConfigError) as info:
        StorageSettings()
    assert variable in str(info.value)
    assert variable in info.value.variables
    assert text in str(info.value)
    for secret in (SECRET_KEY, ACCOUNT_KEY, SESSION_TOKEN):
        assert secret not in str(info.value) and secret not in repr(info.value)


def test_only_selected_providers_are_validated(clean_env: pytest.MonkeyPatch) -> None:
    # a broken Azure environment does not matter while the mode is s3
    clean_env.setenv("AWS_RECORDING_STORAGE_BUCKET_NAME", "recordings")
    clean_env.setenv("AZURE_STORAGE_ACCOUNT_KEY", ACCOUNT_KEY)
    assert StorageSettings().providers == ("s3",)
    clean_env.setenv("STORAGE_UPLOAD_MODE", "both")
    with pytest.raises(ConfigError):
        StorageSettings()


def test_secrets_never_in_repr_or_str(clean_env: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    connection = (
        f"DefaultEndpointsProtocol=https;AccountName=acct1;AccountKey={ACCOUNT_KEY};EndpointSuffix=core.windows.net"
    )
    s3 = S3Settings(bucket="rec", access_key_id="AKIA", secret_access_key=SECRET_KEY, session_token=SESSION_TOKEN)
    az_key = AzureSettings(container="rec", account_name="acct1", account_key=ACCOUNT_KEY)
    az_conn = AzureSettings(container="rec", connection_string=connection)
    root = StorageSettings(upload_mode="both", s3=s3, azure=az_key)
    texts = [repr(x) for x in (s3, az_key, az_conn, root)] + [str(x) for x in (s3, az_key, az_conn, root)]
    texts += [repr(root.model_dump()), s3.model_dump_json(), az_conn.model_dump_json(), caplog.text]
    for text in texts:
        for secret in (SECRET_KEY, ACCOUNT_KEY, SESSION_TOKEN):
            assert secret not in text


def test_settings_table_lists_every_variable() -> None:
    table = settings_table()
    for name in ALL_VARS:
        assert f"`{name}`" in table


def test_readme_table_is_generated_from_the_declarations() -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    start = readme.index("<!-- settings-table:start -->") + len("<!-- settings-table:start -->")
    end = readme.index("<!-- settings-table:end -->")
    assert readme[start:end].strip() == settings_table(), "regenerate with: python -m unistore config"


def test_azure_checksum_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from unistore import AzureSettings, ConfigError

    assert AzureSettings().checksum == "auto"
    monkeypatch.setenv("AZURE_STORAGE_CHECKSUM", " MD5 ")
    assert AzureSettings().checksum == "md5"
    monkeypatch.setenv("AZURE_STORAGE_CHECKSUM", "sha256")
    with pytest.raises(ConfigError) as caught:
        AzureSettings()
    assert "AZURE_STORAGE_CHECKSUM" in str(caught.value) and "'crc64' or 'md5'" in str(caught.value)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"account_name": "recordingsprod"}, "crc64"),
        ({"connection_string": f"DefaultEndpointsProtocol=https;AccountName=prod;AccountKey={ACCOUNT_KEY};"
          "EndpointSuffix=core.windows.net"}, "crc64"),
        ({"account_name": "prod", "account_url": "https://prod.privatelink.blob.core.windows.net"}, "crc64"),
        ({"connection_string": "UseDevelopmentStorage=true"}, "md5"),
        ({"connection_string": f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={ACCOUNT_KEY};"
          "BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;"}, "md5"),
        ({"account_name": "acct", "account_url": "http://localhost:10000/acct"}, "md5"),
        ({"account_name": "acct", "account_url": "https://[::1]:10000/acct"}, "md5"),
    ],
    ids=["azure-identity", "azure-connection-string", "azure-private-endpoint", "dev-storage",
         "azurite-connection-string", "localhost", "ipv6-loopback"],
)
def test_auto_checksum_is_crc64_on_azure_and_md5_on_an_emulator(fields: dict[str, str], expected: str) -> None:
    from unistore import AzureSettings

    settings = AzureSettings(container="recordings", **fields)  # type: ignore[arg-type]
    assert settings.effective_checksum == expected
    assert AzureSettings(container="recordings", checksum="crc64", **fields).effective_checksum == "crc64"  # type: ignore[arg-type]


# A value for every field that differs from the baseline below (a field added later without
# one gets "1", which, read, would fail validation or change the field just as well).
_OTHER = {
    "upload_mode": "s3,azure,local", "require": "any", "local_root": "/tmp/elsewhere",
    "multipart_threshold": "32MiB", "chunk_size": "10MiB", "max_concurrency": "9", "max_buffer_bytes": "1GiB",
    "overwrite": "false", "retry_attempts": "2", "retry_deadline": "7", "connect_timeout": "2",
    "read_timeout": "3", "min_send_rate": "1MiB", "upload_timeout": "99", "gc_freeze": "false",
    "bucket": "generic-bucket", "access_key_id": "AKIAGENERIC", "secret_access_key": SECRET_KEY,
    "session_token": SESSION_TOKEN, "endpoint_url": "http://127.0.0.1:9999", "region": "eu-west-9",
    "addressing_style": "virtual", "checksum_calculation": "when_supported", "checksum": "md5",
    "container": "generic-container", "account_name": "acct2",
    "connection_string": f"AccountName=acct1;AccountKey={ACCOUNT_KEY}", "account_key": ACCOUNT_KEY,
    "account_url": "http://127.0.0.1:10000/acct1", "client_id": "client-9",
}
_BASELINE = {
    "STORAGE_UPLOAD_MODE": "all", "AWS_RECORDING_STORAGE_BUCKET_NAME": "recordings",
    "AZURE_STORAGE_CONTAINER_NAME": "recordings", "AZURE_STORAGE_ACCOUNT_NAME": "acct1",
}
_MODELS = (StorageSettings, S3Settings, AzureSettings)


def _snapshot() -> dict[str, object]:
    """Everything the environment configured: the root settings and both providers' settings."""
    s = StorageSettings()
    assert s.s3 is not None and s.azure is not None
    return {"root": s.model_dump(), "s3": s.s3.model_dump(), "azure": s.azure.model_dump(), "mode": s.providers}


def _field_names() -> list[str]:
    return [field for model in _MODELS for field in model.model_fields]


def test_only_declared_variables_are_read(clean_env: pytest.MonkeyPatch) -> None:
    """A generic `REGION` or `OVERWRITE` in a container image, or JSON in `S3`/`AZURE`, must not
    configure unistore: only the documented variables are read."""
    for name, value in _BASELINE.items():
        clean_env.setenv(name, value)
    baseline = _snapshot()
    for field in _field_names():
        for name in (field, field.upper()):
            clean_env.setenv(name, _OTHER.get(field, "1"))
    s3_json = {f: _OTHER.get(f, "1") for f in S3Settings.model_fields}
    azure_json = {f: _OTHER.get(f, "1") for f in AzureSettings.model_fields if f != "account_key"}
    for name, nested in (("S3", s3_json), ("AZURE", azure_json)):
        clean_env.setenv(name, json.dumps(nested))
        clean_env.setenv(name.lower(), json.dumps(nested))
    assert _snapshot() == baseline
    # and keyword arguments still go by field name, over the declared variables
    assert S3Settings(bucket="by-keyword").bucket == "by-keyword"
    assert StorageSettings(upload_mode="all", overwrite=False).overwrite is False
    clean_env.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    clean_env.setenv("STORAGE_MAX_CONCURRENCY", "3")
    assert S3Settings().region == "eu-west-1" and S3Settings(region="us-west-2").region == "us-west-2"
    assert StorageSettings(max_concurrency=8).max_concurrency == 8


@pytest.mark.parametrize("field", sorted(_OTHER))
def test_each_declared_variable_is_read(clean_env: pytest.MonkeyPatch, field: str) -> None:
    """The other side of the test above (which could otherwise pass by reading nothing): the same
    value under the field's declared variable changes the settings, or is refused."""
    for name, value in _BASELINE.items():
        clean_env.setenv(name, value)
    baseline = _snapshot()
    variables = [_env_name(model, field) for model in _MODELS if field in model.model_fields]
    assert variables
    for variable in variables:
        with clean_env.context() as env:
            env.setenv(variable, _OTHER[field])
            try:
                changed = _snapshot()
            except ConfigError as exc:
                assert variable in exc.variables
            else:
                assert changed != baseline


def test_providers_built_from_arguments_read_no_environment(clean_env: pytest.MonkeyPatch) -> None:
    """A provider's constructor arguments are its whole configuration (`Settings.given`): the
    variables of an environment meant for another provider or process change nothing."""
    from unistore.providers.azure import AzureBlobProvider
    from unistore.providers.s3 import S3Provider

    for name, value in {
        "AWS_S3_CHECKSUM": "md5", "AWS_S3_ADDRESSING_STYLE": "virtual", "AWS_DEFAULT_REGION": "eu-west-9",
        "AWS_REQUEST_CHECKSUM_CALCULATION": "when_supported", "AZURE_STORAGE_CHECKSUM": "crc64",
        "AZURE_CLIENT_ID": "client-from-env", "AZURE_STORAGE_ACCOUNT_URL": "http://127.0.0.1:1/acct",
    }.items():
        clean_env.setenv(name, value)
    s3 = S3Provider(bucket="recordings", endpoint_url="http://127.0.0.1:9000")
    assert (s3.checksum, s3.addressing_style, s3.checksum_calculation) == ("crc32", "path", "when_required")
    assert s3.config.s3["addressing_style"] == "path"
    azure = AzureBlobProvider(container="recordings", connection_string="UseDevelopmentStorage=true")
    assert azure.checksum == "md5" and azure._settings.client_id is None and azure._settings.account_url is None
