"""Settings, read from the environment once, at start-up, by pydantic-settings.

Every knob is declared here with its variable, default and unit; the README's configuration
table is generated from these declarations (`python -m unistore._settings`). An invalid
environment fails here, with a `ConfigError` that names the variable and the fix, never later
inside an SDK call. Only the providers that `STORAGE_UPLOAD_MODE` selects are validated, and
only the declared variables are read (`_DeclaredVariables`): never a field's bare name.
"""

from __future__ import annotations

import binascii
import difflib
import functools
import ipaddress
import logging
import os
import re
import urllib.parse
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import AliasChoices, BeforeValidator, ByteSize, Field, SecretStr, ValidationError, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, InitSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict

from . import _tiers
from ._errors import ConfigError
from ._logging import redact

DEV_ACCOUNT = "devstoreaccount1"
"""The account name of Azure's storage emulators (Azurite, and UseDevelopmentStorage=true)."""

logger = logging.getLogger("unistore")

MiB = 1024 * 1024
S3_MIN_PART = 5 * MiB

AzureAuthMode = Literal["connection_string", "account_key", "managed_identity"]
RequirePolicy = Literal["all", "any", "primary"]
AddressingStyle = Literal["path", "virtual", "auto"]

PROVIDER_NAMES = ("s3", "azure", "local", "memory")
_MODE_ALIASES: dict[str, tuple[str, ...]] = {
    "both": ("s3", "azure"),
    "all": ("s3", "azure", "local"),
}


def _env_var(model: type[BaseSettings], field: str) -> str | None:
    """The one environment variable a field is read from (its alias); None: not from the environment."""
    info = model.model_fields.get(field)
    alias = info.validation_alias if info else None
    if isinstance(alias, AliasChoices):
        alias = alias.choices[0]
    return alias if isinstance(alias, str) else None


def _env_name(model: type[BaseSettings], field: str) -> str:
    return _env_var(model, field) or field


def _strip_lower(value: object) -> object:
    return value.strip().lower() if isinstance(value, str) else value


def _s3_class(value: object) -> str | None:
    return _tiers.setting("s3", value)


def _azure_tier(value: object) -> str | None:
    return _tiers.setting("azure", value)


_Lowered = BeforeValidator(_strip_lower)
"""`AWS_S3_CHECKSUM=CRC32`, `STORAGE_REQUIRE=" Any "` are fine: a choice compared in lower case."""


class _DeclaredVariables(PydanticBaseSettingsSource):
    """The environment source: each field's declared variable (its alias, in any case), and
    nothing else. pydantic-settings' own source also reads a field's bare name when fields may be
    populated by name (`REGION`, `OVERWRITE`, `BUCKET` would configure unistore), and the nested
    `s3`/`azure` models as JSON (`S3='{"bucket": ...}'`); keyword arguments still go by field
    name (`S3Settings(bucket=...)`), through the init source."""

    def __init__(self, settings_cls: type[BaseSettings], given: frozenset[str] = frozenset()) -> None:
        super().__init__(settings_cls)
        self._environ = {name.lower(): value for name, value in os.environ.items()}
        self._given = given

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        name = _env_var(self.settings_cls, field_name)
        return (self._environ.get(name.lower()) if name else None), name or field_name, False

    def __call__(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for field_name, field in self.settings_cls.model_fields.items():
            value, name, _ = self.get_field_value(field, field_name)
            # A keyword argument wins. Left to pydantic, a variable would beat a keyword given by
            # field name wherever pydantic-settings does not key both by the alias (2.3 does not).
            if value is not None and not {field_name, name} & self._given:
                values[name] = value
        return values


class _EnvSettings(BaseSettings):
    """Base: reads only the declared variables, and turns pydantic's ValidationError into a
    ConfigError naming them."""

    model_config = SettingsConfigDict(
        extra="ignore", populate_by_name=True, case_sensitive=False, hide_input_in_errors=True
    )
    _secret_fields: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise _config_error(type(self), exc) from None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        given = frozenset(init_settings.init_kwargs) if isinstance(init_settings, InitSettingsSource) else frozenset()
        return init_settings, _DeclaredVariables(settings_cls, given)

    @classmethod
    def given(cls, **values: Any) -> Self:
        """These values alone, validated by the same rules, the environment left unread (what a
        provider built from constructor arguments holds)."""
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            raise _config_error(cls, exc) from None


def _config_error(model: type[_EnvSettings], exc: ValidationError) -> ConfigError:
    names: list[str] = []
    lines: list[str] = []
    for err in exc.errors(include_input=False, include_url=False):
        loc = err.get("loc") or ("?",)
        field = str(loc[0])
        name = _env_name(model, field)
        names.append(name)
        msg = err.get("msg", "invalid value")
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        lines.append(f"{name}: {msg}")
    return ConfigError("invalid storage configuration: " + "; ".join(lines), variables=names)


def as_secret(value: str | SecretStr | None) -> SecretStr | None:
    """A secret given as plain text (constructor arguments) wrapped like the settings hold it."""
    if value is None or isinstance(value, SecretStr):
        return value
    return SecretStr(value)


def _positive(name: str, value: int | None, minimum: int = 1) -> None:
    if value is not None and value < minimum:
        raise ConfigError(f"{name} must be at least {minimum} (got {value})", variables=[name])


_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")
_CONTAINER_RE = re.compile(r"^[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}$")
_ACCOUNT_RE = re.compile(r"^[a-z0-9]{3,24}$")
_BUCKET_RESERVED_PREFIXES = ("xn--", "sthree-")


def check_service_url(value: str, variable: str) -> None:
    """An endpoint variable holds the service's base URL: http(s), a host, optionally a path.
    A query string, a fragment or user:password@ means a presigned/SAS URL or credentials were
    pasted by mistake: refused, and never echoed (only the scheme and host are shown)."""
    if not re.match(r"^https?://[^/\s]+", value):
        raise ConfigError(
            f"{variable}={redact(value)!r} is not an http(s) URL: use e.g. http://127.0.0.1:9000",
            variables=[variable],
        )
    parts = urllib.parse.urlsplit(value)
    if parts.query or parts.fragment or "@" in parts.netloc:
        host = parts.hostname or "?"
        raise ConfigError(
            f"{variable} (for {parts.scheme}://{host}) carries a query string, a fragment or "
            "user:password@: it looks like a presigned/SAS URL or embedded credentials; give only "
            "the service's base URL (scheme://host[:port][/path]) and put credentials in their own "
            "variables",
            variables=[variable],
        )


def check_account_key(value: str, variable: str, what: str | None = None) -> None:
    """Azure account keys are base64 (key1/key2 of the account); the SDK would otherwise fail
    only when it signs the first request, with a misleading error. The key is never echoed."""
    try:
        decoded = binascii.a2b_base64(value.strip().encode("ascii"), strict_mode=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        decoded = b""
    if not decoded:
        raise ConfigError(
            f"{what or variable} is not a base64 account key: copy key1 or key2 (or the whole "
            "connection string) again from the storage account's Access keys page",
            variables=[variable],
        )


def check_bucket_name(name: str, variable: str = "AWS_RECORDING_STORAGE_BUCKET_NAME") -> None:
    """S3 bucket naming rules: 3-63 characters of a-z, 0-9, '.', '-', starting and ending
    with a letter or digit, no '..', and not shaped like an IP address. Two AWS shapes that
    botocore accepts are refused by name, since unistore's own signed uploads do not do them."""
    if name.startswith("arn:"):
        raise ConfigError(
            f"{variable} holds an ARN ({name.split('/')[0]}/...): access points, Multi-Region "
            "Access Points and Outposts buckets are not supported by unistore's signed uploads; "
            f"set {variable} to the bucket's own name",
            variables=[variable],
        )
    if name.endswith("--x-s3"):
        raise ConfigError(
            f"{variable}={name!r} is an S3 Express One Zone directory bucket, whose session "
            "authentication unistore's signed uploads do not do: use a general purpose bucket",
            variables=[variable],
        )
    problem = None
    if not _BUCKET_RE.match(name):
        problem = "3-63 lowercase letters, digits, '.' or '-', starting and ending with a letter or digit"
    elif ".." in name or ".-" in name or "-." in name:
        problem = "no adjacent periods, and no period next to a hyphen"
    elif name.startswith(_BUCKET_RESERVED_PREFIXES):
        problem = f"must not start with a reserved prefix ({', '.join(_BUCKET_RESERVED_PREFIXES)})"
    else:
        try:
            ipaddress.ip_address(name)
            problem = "must not be formatted as an IP address"
        except ValueError:
            pass
    if problem:
        raise ConfigError(f"{variable}={name!r} is not a valid S3 bucket name: {problem}", variables=[variable])


def check_container_name(name: str, variable: str = "AZURE_STORAGE_CONTAINER_NAME") -> None:
    """Azure container naming rules: 3-63 characters of a-z, 0-9 and single hyphens,
    starting and ending with a letter or digit."""
    if not _CONTAINER_RE.match(name) or name.endswith("-"):
        raise ConfigError(
            f"{variable}={name!r} is not a valid Azure container name: 3-63 lowercase letters, "
            "digits or single hyphens, starting and ending with a letter or digit",
            variables=[variable],
        )


class S3Settings(_EnvSettings):
    """The S3 side: `AWS_*` variables."""

    bucket: str | None = Field(
        None,
        validation_alias="AWS_RECORDING_STORAGE_BUCKET_NAME",
        description="Bucket that receives the recordings. Required for `s3`.",
    )
    access_key_id: str | None = Field(
        None,
        validation_alias="AWS_ACCESS_KEY_ID",
        description="Static access key id; absent: the standard AWS credential chain.",
    )
    secret_access_key: SecretStr | None = Field(
        None,
        validation_alias="AWS_SECRET_ACCESS_KEY",
        description="Static secret key, paired with `AWS_ACCESS_KEY_ID`.",
    )
    session_token: SecretStr | None = Field(
        None,
        validation_alias="AWS_SESSION_TOKEN",
        description="Session token of temporary credentials.",
    )
    endpoint_url: str | None = Field(
        None,
        validation_alias="AWS_ENDPOINT_URL",
        description="S3-compatible endpoint (MinIO, SeaweedFS, ...); absent: AWS.",
    )
    region: str = Field(
        "us-east-1",
        validation_alias="AWS_DEFAULT_REGION",
        description="Region.",
    )
    addressing_style: AddressingStyle | None = Field(
        None,
        validation_alias="AWS_S3_ADDRESSING_STYLE",
        description="`path`, `virtual` or `auto`; default `path` with a custom endpoint, else `auto`.",
    )
    checksum_calculation: Literal["when_supported", "when_required"] | None = Field(
        None,
        validation_alias="AWS_REQUEST_CHECKSUM_CALCULATION",
        description=(
            "botocore's default request checksums; default `when_required` with a custom "
            "endpoint (S3-compatible servers mishandle the aws-chunked trailers), else botocore's."
        ),
    )
    storage_class: Annotated[str | None, BeforeValidator(_s3_class)] = Field(
        None,
        validation_alias="AWS_S3_STORAGE_CLASS",
        description=(
            "Storage class of every upload (`x-amz-storage-class`): "
            + ", ".join(f"`{name}`" for name in _tiers.S3_CLASSES)
            + ", or a generic `hot`/`cool`/`cold`/`archive`; any case. Unset: the bucket's default "
            "(STANDARD), no header sent. A call's `tier=` wins."
        ),
    )
    checksum: Annotated[Literal["crc32", "md5"], _Lowered] = Field(
        "crc32",
        validation_alias="AWS_S3_CHECKSUM",
        description=(
            "Digest each put and part carries and the service verifies and echoes: `crc32` "
            "(`x-amz-checksum-crc32`, 5x cheaper to compute) or `md5` (`Content-MD5`, for servers "
            "without flexible checksums). A fan-out hashes once per kind it needs."
        ),
    )

    @model_validator(mode="after")
    def _check(self) -> S3Settings:
        if self.bucket is not None:
            check_bucket_name(self.bucket)
        if (self.access_key_id is None) != (self.secret_access_key is None):
            missing = "AWS_SECRET_ACCESS_KEY" if self.secret_access_key is None else "AWS_ACCESS_KEY_ID"
            raise ConfigError(
                f"{missing} is missing: set both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
                "or neither to use the standard AWS credential chain",
                variables=["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"],
            )
        if self.endpoint_url is not None:
            check_service_url(self.endpoint_url, "AWS_ENDPOINT_URL")
        return self

    def require_bucket(self) -> str:
        if not self.bucket:
            raise ConfigError(
                "AWS_RECORDING_STORAGE_BUCKET_NAME is required when STORAGE_UPLOAD_MODE includes s3",
                variables=["AWS_RECORDING_STORAGE_BUCKET_NAME"],
            )
        return self.bucket

    @property
    def effective_addressing_style(self) -> AddressingStyle:
        if self.addressing_style:
            return self.addressing_style
        return "path" if self.endpoint_url else "auto"

    @property
    def effective_checksum_calculation(self) -> Literal["when_supported", "when_required"] | None:
        """With a custom endpoint, botocore's default checksums are off unless asked for."""
        return self.checksum_calculation or ("when_required" if self.endpoint_url else None)


def parse_connection_string(value: str) -> dict[str, str]:
    """Split an Azure connection string into its parts; never echo it in an error."""
    parts: dict[str, str] = {}
    for item in value.strip().strip(";").split(";"):
        if not item.strip():
            continue
        name, sep, val = item.partition("=")
        if not sep or not name.strip():
            raise ConfigError(
                "AZURE_STORAGE_CONNECTION_STRING is malformed: expected 'Name=value' pairs "
                "separated by ';' (copy it from the portal's Access keys page)",
                variables=["AZURE_STORAGE_CONNECTION_STRING"],
            )
        parts[name.strip()] = val.strip()
    lowered = {k.lower(): v for k, v in parts.items()}
    dev = lowered.get("usedevelopmentstorage", "").lower() == "true"
    has_auth = "accountkey" in lowered or "sharedaccesssignature" in lowered
    has_account = "accountname" in lowered or "blobendpoint" in lowered
    if not dev and not (has_auth and has_account):
        raise ConfigError(
            "AZURE_STORAGE_CONNECTION_STRING is incomplete: it needs AccountName and AccountKey "
            "(or BlobEndpoint and SharedAccessSignature), or UseDevelopmentStorage=true",
            variables=["AZURE_STORAGE_CONNECTION_STRING"],
        )
    if "accountkey" in lowered:
        variable = "AZURE_STORAGE_CONNECTION_STRING"
        check_account_key(lowered["accountkey"], variable, f"the AccountKey of {variable}")
    return parts


class AzureSettings(_EnvSettings):
    """The Azure side: `AZURE_STORAGE_*` variables and the auth mode they imply."""

    container: str | None = Field(
        None,
        validation_alias="AZURE_STORAGE_CONTAINER_NAME",
        description="Container that receives the recordings. Required for `azure`.",
    )
    account_name: str | None = Field(
        None,
        validation_alias="AZURE_STORAGE_ACCOUNT_NAME",
        description="Storage account; alone it means managed identity.",
    )
    connection_string: SecretStr | None = Field(
        None,
        validation_alias="AZURE_STORAGE_CONNECTION_STRING",
        description="Connection string (also `UseDevelopmentStorage=true`).",
    )
    account_key: SecretStr | None = Field(
        None,
        validation_alias="AZURE_STORAGE_ACCOUNT_KEY",
        description="Account key, with the account name. Not for production.",
    )
    account_url: str | None = Field(
        None,
        validation_alias="AZURE_STORAGE_ACCOUNT_URL",
        description=(
            "Blob endpoint override (Azurite, sovereign cloud, private endpoint); default "
            "`https://{account}.blob.core.windows.net`."
        ),
    )
    client_id: str | None = Field(
        None,
        validation_alias="AZURE_CLIENT_ID",
        description="Client id of a user-assigned managed identity.",
    )
    access_tier: Annotated[str | None, BeforeValidator(_azure_tier)] = Field(
        None,
        validation_alias="AZURE_STORAGE_ACCESS_TIER",
        description=(
            "Access tier of every upload (`x-ms-access-tier`): `Hot`, `Cool`, `Cold`, `Archive`, "
            "or a generic `hot`/`cool`/`cold`/`archive`; any case. Unset: the account's default "
            "tier, no header sent. A call's `tier=` wins."
        ),
    )
    checksum: Annotated[Literal["auto", "crc64", "md5"], _Lowered] = Field(
        "auto",
        validation_alias="AZURE_STORAGE_CHECKSUM",
        description=(
            "Digest each Put Blob and Put Block carries for the service to verify: `crc64` "
            "(`x-ms-content-crc64`, 25x cheaper to compute than MD5, via awscrt) or `md5` "
            "(`Content-MD5`). `auto`: `crc64`, except `md5` against an emulator (the development "
            "account, or an endpoint on an IP address or localhost), since Azurite checks MD5 "
            "natively but CRC-64 in JavaScript, at 3.5x its CPU."
        ),
    )

    @model_validator(mode="after")
    def _check(self) -> AzureSettings:
        if self.container is not None:
            check_container_name(self.container)
        if self.account_name is not None and not _ACCOUNT_RE.match(self.account_name):
            raise ConfigError(
                f"AZURE_STORAGE_ACCOUNT_NAME={self.account_name!r} is not a valid storage account "
                "name: 3-24 lowercase letters and digits",
                variables=["AZURE_STORAGE_ACCOUNT_NAME"],
            )
        if self.account_url is not None:
            check_service_url(self.account_url, "AZURE_STORAGE_ACCOUNT_URL")
        if self.connection_string is not None:
            if not self.connection_string.get_secret_value().strip():
                raise ConfigError(
                    "AZURE_STORAGE_CONNECTION_STRING is set but empty",
                    variables=["AZURE_STORAGE_CONNECTION_STRING"],
                )
            parts = self._connection_parts()  # refuses a malformed or incomplete string first
            if self.account_key is not None:
                raise ConfigError(
                    "AZURE_STORAGE_CONNECTION_STRING and AZURE_STORAGE_ACCOUNT_KEY are both set: "
                    "keep one (the connection string already carries its key)",
                    variables=["AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_ACCOUNT_KEY"],
                )
            in_string = parts.get("accountname")
            if self.account_name and in_string and in_string != self.account_name:
                raise ConfigError(
                    "AZURE_STORAGE_ACCOUNT_NAME names another account than "
                    "AZURE_STORAGE_CONNECTION_STRING: unset one of them",
                    variables=["AZURE_STORAGE_ACCOUNT_NAME", "AZURE_STORAGE_CONNECTION_STRING"],
                )
        elif self.account_key is not None:
            if not self.account_name:
                raise ConfigError(
                    "AZURE_STORAGE_ACCOUNT_KEY is set without AZURE_STORAGE_ACCOUNT_NAME: "
                    "set the account name too, or use AZURE_STORAGE_CONNECTION_STRING",
                    variables=["AZURE_STORAGE_ACCOUNT_KEY", "AZURE_STORAGE_ACCOUNT_NAME"],
                )
            if not self.account_key.get_secret_value().strip():
                raise ConfigError("AZURE_STORAGE_ACCOUNT_KEY is set but empty", variables=["AZURE_STORAGE_ACCOUNT_KEY"])
            check_account_key(self.account_key.get_secret_value(), "AZURE_STORAGE_ACCOUNT_KEY")
        return self

    @property
    def auth_mode(self) -> AzureAuthMode:
        """Connection string, else account name + key, else managed identity."""
        if self.connection_string is not None:
            return "connection_string"
        if self.account_key is not None:
            return "account_key"
        if self.account_name:
            return "managed_identity"
        raise ConfigError(
            "Azure Storage has no way to authenticate: set AZURE_STORAGE_ACCOUNT_NAME (managed "
            "identity), or AZURE_STORAGE_CONNECTION_STRING, or AZURE_STORAGE_ACCOUNT_NAME with "
            "AZURE_STORAGE_ACCOUNT_KEY",
            variables=[
                "AZURE_STORAGE_ACCOUNT_NAME",
                "AZURE_STORAGE_CONNECTION_STRING",
                "AZURE_STORAGE_ACCOUNT_KEY",
            ],
        )

    def require_complete(self) -> AzureAuthMode:
        """What a selected Azure provider needs, or a ConfigError: a container, and a way to
        authenticate (whose mode is returned)."""
        self.require_container()
        return self.auth_mode

    def require_container(self) -> str:
        if not self.container:
            raise ConfigError(
                "AZURE_STORAGE_CONTAINER_NAME is required when STORAGE_UPLOAD_MODE includes azure",
                variables=["AZURE_STORAGE_CONTAINER_NAME"],
            )
        return self.container

    @functools.cached_property
    def emulator(self) -> bool:
        """True for an Azurite-style endpoint: the development account, or a blob endpoint on
        an IP address or localhost (which carries the account in its path). Azure's own
        endpoints, private ones included, are host names (`<account>.blob.core.windows.net`)."""
        parts = self._connection_parts()
        if parts.get("usedevelopmentstorage", "").lower() == "true":
            return True
        account = parts.get("accountname") or self.account_name
        if account == DEV_ACCOUNT:
            return True
        url = parts.get("blobendpoint") or self.account_url
        if not url:
            return False
        host = (urllib.parse.urlsplit(url).hostname or "").lower()
        if host == "localhost" or host.endswith(".localhost"):
            return True
        try:
            ipaddress.ip_address(host)
        except ValueError:
            return False
        return True

    def _connection_parts(self) -> dict[str, str]:
        """The connection string's `Name=value` parts, names in lower case; {} without one."""
        if self.connection_string is None:
            return {}
        parts = parse_connection_string(self.connection_string.get_secret_value())
        return {name.lower(): value for name, value in parts.items()}

    @property
    def effective_checksum(self) -> Literal["crc64", "md5"]:
        """What `checksum` means for this endpoint (`auto` resolved)."""
        if self.checksum == "auto":
            return "md5" if self.emulator else "crc64"
        return self.checksum

    @property
    def effective_account_url(self) -> str | None:
        if self.account_url:
            return self.account_url.rstrip("/")
        if self.account_name and self.connection_string is None:
            return f"https://{self.account_name}.blob.core.windows.net"
        return None


def parse_upload_mode(value: str) -> tuple[str, ...]:
    """`s3`, `azure`, `both`, `local`, `memory`, `all`, or a comma list -> provider names."""
    names: list[str] = []
    for raw in value.split(","):
        item = raw.strip().lower()
        if not item:
            continue
        if item in _MODE_ALIASES:
            expanded = _MODE_ALIASES[item]
        elif item in PROVIDER_NAMES:
            expanded = (item,)
        else:
            choices = [*PROVIDER_NAMES, *_MODE_ALIASES]
            close = difflib.get_close_matches(item, choices, n=1)
            suggestion = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(
                f"STORAGE_UPLOAD_MODE={value!r}: unknown provider {item!r}{suggestion}; use one of "
                "s3, azure, both, local, memory, all, or a comma list such as 's3,azure'",
                variables=["STORAGE_UPLOAD_MODE"],
            )
        names.extend(n for n in expanded if n not in names)
    if not names:
        raise ConfigError(
            "STORAGE_UPLOAD_MODE is empty: use s3, azure or both", variables=["STORAGE_UPLOAD_MODE"]
        )
    return tuple(names)


class StorageSettings(_EnvSettings):
    """Root settings: what to upload to, how, and each selected provider's settings."""

    upload_mode: str = Field(
        "s3",
        validation_alias="STORAGE_UPLOAD_MODE",
        description="`s3`, `azure`, `both`; also `local`, `memory`, `all` (s3+azure+local) or a comma list.",
    )
    read_order: str | None = Field(
        None,
        validation_alias="STORAGE_READ_ORDER",
        description=(
            "Comma list of providers that reads (downloads, presigned GETs) try first, e.g. "
            "`azure,s3`; the others follow in `STORAGE_UPLOAD_MODE` order. Only selected providers."
        ),
    )
    require: Annotated[RequirePolicy, _Lowered] = Field(
        "all",
        validation_alias="STORAGE_REQUIRE",
        description=(
            "Fan-out success rule: every provider (`all`), at least one (`any`), or the first of "
            "the mode (`primary`: the others are still attempted, and what they miss is recorded for repair)."
        ),
    )
    journal_prefix: str = Field(
        ".unistore/pending/",
        validation_alias="STORAGE_JOURNAL_PREFIX",
        description=(
            "Folder (under `.unistore/`, never listed) where a fan-out that missed a copy records it, in "
            "the providers that hold the recording: one small JSON object per missed upload, none on "
            "success; `unistore repair` reads and clears it."
        ),
    )
    log_format: Annotated[Literal["text", "json"], _Lowered] = Field(
        "text",
        validation_alias="STORAGE_LOG_FORMAT",
        description=(
            "Format of the log lines unistore prints itself (the CLI's `-v`): `text`, or `json` (one "
            "object per line: level, logger, message and the line's fields). Applications that configure "
            "logging themselves use `unistore.JsonLogFormatter`."
        ),
    )
    local_root: Path = Field(
        Path("./storage"),
        validation_alias="STORAGE_LOCAL_ROOT",
        description="Folder of the local provider.",
    )
    multipart_threshold: ByteSize = Field(
        ByteSize(16 * MiB),
        validation_alias="STORAGE_MULTIPART_THRESHOLD",
        description="Bytes above which uploads go in parts (accepts `16MiB`).",
    )
    chunk_size: ByteSize = Field(
        ByteSize(8 * MiB),
        validation_alias="STORAGE_CHUNK_SIZE",
        description="Smallest part/block size in bytes, grown as needed to stay under the part caps (min 5 MiB).",
    )
    max_concurrency: int = Field(
        4,
        validation_alias="STORAGE_MAX_CONCURRENCY",
        description="Parts in flight per upload and provider.",
    )
    max_buffer_bytes: ByteSize = Field(
        ByteSize(256 * MiB),
        validation_alias="STORAGE_MAX_BUFFER_BYTES",
        description="Process-wide budget of part bytes in flight, shared by all uploads and providers.",
    )
    overwrite: bool = Field(
        True,
        validation_alias="STORAGE_OVERWRITE",
        description="`false`: uploads never replace an existing object (conditional create).",
    )
    retry_attempts: int = Field(
        5,
        validation_alias="STORAGE_RETRY_ATTEMPTS",
        description="Attempts per request (1 = no retry) for transient faults.",
    )
    retry_deadline: float = Field(
        120.0,
        validation_alias="STORAGE_RETRY_DEADLINE",
        description="Seconds one request may spend in retries before its last error is raised.",
    )
    connect_timeout: float = Field(
        10.0,
        validation_alias="STORAGE_CONNECT_TIMEOUT",
        description="Seconds to open a connection.",
    )
    read_timeout: float = Field(
        60.0,
        validation_alias="STORAGE_READ_TIMEOUT",
        description="Seconds without progress on a response before the request counts as failed.",
    )
    min_send_rate: ByteSize = Field(
        ByteSize(256 * 1024),
        validation_alias="STORAGE_MIN_SEND_RATE",
        description=(
            "Bytes per second (accepts `256KiB`) below which one upload request counts as stalled: "
            "a request of N bytes may take STORAGE_READ_TIMEOUT + N / this rate, then is retried."
        ),
    )
    upload_timeout: float | None = Field(
        None,
        validation_alias="STORAGE_UPLOAD_TIMEOUT",
        description=(
            "Overall seconds for one upload to one provider, not counting time spent waiting for the "
            "source (a live stream's next chunk, or a slower provider in a fan-out); unset: no overall limit."
        ),
    )
    gc_freeze: bool = Field(
        True,
        validation_alias="STORAGE_GC_FREEZE",
        description=(
            "Once the first SDK client is built, move the objects alive then out of the garbage "
            "collector's reach (`gc.freeze()`, once per process): a full collection over them "
            "stalled the event loop 25-90 ms."
        ),
    )
    s3: S3Settings | None = Field(None, exclude=True)
    azure: AzureSettings | None = Field(None, exclude=True)

    @model_validator(mode="after")
    def _check(self) -> StorageSettings:
        from ._journal import check_journal_prefix

        check_journal_prefix(self.journal_prefix)
        _positive("STORAGE_MULTIPART_THRESHOLD", self.multipart_threshold)
        _positive("STORAGE_MAX_CONCURRENCY", self.max_concurrency)
        _positive("STORAGE_RETRY_ATTEMPTS", self.retry_attempts)
        _positive("STORAGE_MIN_SEND_RATE", self.min_send_rate)
        if self.chunk_size < S3_MIN_PART:
            raise ConfigError(
                f"STORAGE_CHUNK_SIZE={int(self.chunk_size)} is below S3's 5 MiB minimum part size; "
                "use at least 5MiB",
                variables=["STORAGE_CHUNK_SIZE"],
            )
        if self.max_buffer_bytes < self.chunk_size:
            raise ConfigError(
                "STORAGE_MAX_BUFFER_BYTES must hold at least one part (STORAGE_CHUNK_SIZE)",
                variables=["STORAGE_MAX_BUFFER_BYTES", "STORAGE_CHUNK_SIZE"],
            )
        for name, value in (
            ("STORAGE_RETRY_DEADLINE", self.retry_deadline),
            ("STORAGE_CONNECT_TIMEOUT", self.connect_timeout),
            ("STORAGE_READ_TIMEOUT", self.read_timeout),
            ("STORAGE_UPLOAD_TIMEOUT", self.upload_timeout),
        ):
            if value is not None and not value > 0:
                raise ConfigError(f"{name} must be a positive number of seconds", variables=[name])
        parse_upload_mode(self.upload_mode)
        self.read_providers  # noqa: B018 - refuses a name outside STORAGE_UPLOAD_MODE now
        return self

    def model_post_init(self, context: Any, /) -> None:
        """The selected providers' settings, read from the environment unless given: only
        those, so that an unselected provider's variables are never validated."""
        if "s3" in self.providers:
            if self.s3 is None:
                self.s3 = S3Settings()
            self.s3.require_bucket()
        if "azure" in self.providers:
            if self.azure is None:
                self.azure = AzureSettings()
            self.azure.require_complete()

    @functools.cached_property
    def providers(self) -> tuple[str, ...]:
        """Provider names selected by `STORAGE_UPLOAD_MODE`, in order."""
        return parse_upload_mode(self.upload_mode)

    @property
    def read_providers(self) -> tuple[str, ...]:
        """Every selected provider in the order reads try them (`STORAGE_READ_ORDER` first)."""
        from ._reads import resolve_read_order

        names = None if self.read_order is None else self.read_order.split(",")
        return resolve_read_order(self.providers, names)


def settings_table() -> str:
    """Markdown table of every variable, generated from the declarations above."""
    rows = ["| variable | meaning | default |", "| --- | --- | --- |"]
    for model in (StorageSettings, S3Settings, AzureSettings):
        for field, info in model.model_fields.items():
            if field in ("s3", "azure"):
                continue
            name = _env_name(model, field)
            default = info.default
            if isinstance(default, int) and not isinstance(default, bool) and default >= MiB:
                shown = f"{default // MiB} MiB"
            elif isinstance(default, ByteSize):
                shown = f"{default // 1024} KiB"
            elif default is None:
                shown = "—"
            elif isinstance(default, Path):
                shown = f"`./{default}`"
            else:
                shown = str(default)
            rows.append(f"| `{name}` | {info.description or ''} | {shown} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(settings_table())  # noqa: T201
