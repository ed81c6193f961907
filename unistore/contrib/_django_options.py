"""`OPTIONS` of a `UnistoreStorage` in Django's `STORAGES` setting, turned into settings.

The keys are the environment variables' names (`STORAGE_UPLOAD_MODE`,
`AWS_RECORDING_STORAGE_BUCKET_NAME`, ...), validated by the same pydantic models; an option
overrides the variable of the same name, and anything not given is read from the environment
as usual. A few options have no variable because they only mean something to Django (`url()`,
empty files): `DjangoOptions`. An unknown key is a `ConfigError` that names it. This module
does not import Django.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .._errors import ConfigError
from .._settings import AzureSettings, S3Settings, StorageSettings, _env_name, check_service_url

MAX_URL_EXPIRES = 7 * 24 * 3600
"""S3 refuses presigned URLs valid for longer than 7 days (SigV4)."""


class DjangoOptions(BaseModel):
    """Options for Django's side only; the names are the `OPTIONS` keys."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    URL_EXPIRES: int = Field(
        3600, description="Seconds a presigned URL from `url()` stays valid (at most 7 days, S3's limit)."
    )
    PUBLIC_BASE_URL: str | None = Field(
        None,
        description=(
            "Base URL (a CDN, a public bucket) that `url()` joins the name to instead of presigning; "
            "no request is made."
        ),
    )
    ALLOW_EMPTY: bool = Field(
        False, description="Save empty files (by default an empty upload is refused: `EmptySourceError`)."
    )

    @field_validator("URL_EXPIRES")
    @classmethod
    def _expiry(cls, value: int) -> int:
        if not 1 <= value <= MAX_URL_EXPIRES:
            raise ValueError(f"must be between 1 and {MAX_URL_EXPIRES} seconds (7 days), not {value}")
        return value

    @field_validator("PUBLIC_BASE_URL")
    @classmethod
    def _base_url(cls, value: str | None) -> str | None:
        if value is not None:
            check_service_url(value, "PUBLIC_BASE_URL")  # refuses a pasted presigned URL or SAS
            value = value.rstrip("/")
        return value


def _names(model: type[BaseModel]) -> set[str]:
    if model is DjangoOptions:
        return set(model.model_fields)
    return {_env_name(model, field) for field in model.model_fields if field not in ("s3", "azure")}  # type: ignore[arg-type]


_GROUPS: tuple[type[BaseModel], ...] = (StorageSettings, S3Settings, AzureSettings, DjangoOptions)


def known_options() -> list[str]:
    """Every key `OPTIONS` accepts."""
    return sorted(set().union(*(_names(model) for model in _GROUPS)))


def options_table() -> str:
    """Markdown table of the Django-only options (the README's), from the declarations above."""
    rows = ["| option | meaning | default |", "| --- | --- | --- |"]
    for name, info in DjangoOptions.model_fields.items():
        default = "—" if info.default is None else f"`{info.default}`"
        rows.append(f"| `{name}` | {info.description or ''} | {default} |")
    return "\n".join(rows)


def parse_options(options: Mapping[str, Any]) -> tuple[StorageSettings, DjangoOptions]:
    """Validate `OPTIONS` into the settings the backend runs on. Raises `ConfigError`."""
    known = known_options()
    unknown = sorted(set(options) - set(known))
    if unknown:
        hints = []
        for name in unknown:
            close = difflib.get_close_matches(str(name).upper(), known, n=1)
            hints.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise ConfigError(
            f"unknown OPTIONS for unistore.contrib.django.UnistoreStorage: {', '.join(hints)}; the keys "
            "are the environment variables' names (see `python -m unistore config`) and URL_EXPIRES, "
            "PUBLIC_BASE_URL, ALLOW_EMPTY",
            variables=[str(name) for name in unknown],
        )
    picked = {model: {k: v for k, v in options.items() if k in _names(model)} for model in _GROUPS}
    try:
        django = DjangoOptions(**picked[DjangoOptions])
    except ValidationError as exc:
        problems = [f"{'.'.join(map(str, e['loc']))}: {e['msg'].removeprefix('Value error, ')}" for e in exc.errors()]
        raise ConfigError(
            "invalid OPTIONS for UnistoreStorage: " + "; ".join(problems),
            variables=[str(e["loc"][0]) for e in exc.errors() if e["loc"]],
        ) from None
    # a provider's settings are built from the options only when some are given; otherwise
    # StorageSettings reads them from the environment, for the providers it selects
    s3 = S3Settings(**picked[S3Settings]) if picked[S3Settings] else None
    azure = AzureSettings(**picked[AzureSettings]) if picked[AzureSettings] else None
    settings = StorageSettings(**picked[StorageSettings], s3=s3, azure=azure)
    return settings, django


__all__ = ["DjangoOptions", "known_options", "options_table", "parse_options"]
