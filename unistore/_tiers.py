"""Storage tiers: S3 storage classes and Azure access tiers, and the generic names that map
to both.

A leaf module like `_types`: settings, providers and the manager all check tier values here, so
that a bad value is refused by the same words wherever it is given, before anything is written.

A tier given to an upload (`tier=`) is either one value for every provider, or a mapping of
provider name to value (`{"s3": "STANDARD_IA", "azure": "Cool"}`). One value is a generic name
(`hot`, `cool`, `cold`, `archive`), which each service maps through `GENERIC`, or a service's
own name, which only that service accepts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from ._types import Tier

Service = Literal["s3", "azure", "generic"]

S3_CLASSES = (
    "STANDARD", "STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING", "GLACIER_IR", "GLACIER",
    "DEEP_ARCHIVE", "REDUCED_REDUNDANCY",
)
"""The S3 storage classes a general-purpose bucket takes on upload (OUTPOSTS, SNOW and
EXPRESS_ONEZONE need their own kinds of bucket and are not offered)."""

AZURE_TIERS = ("Hot", "Cool", "Cold", "Archive")
"""The access tiers of a block blob on a general-purpose v2 account."""

GENERIC_TIERS = ("hot", "cool", "cold", "archive")

GENERIC: Mapping[str, Mapping[Service, str]] = {
    "hot": {"s3": "STANDARD", "azure": "Hot"},
    "cool": {"s3": "STANDARD_IA", "azure": "Cool"},
    "cold": {"s3": "GLACIER_IR", "azure": "Cold"},
    "archive": {"s3": "DEEP_ARCHIVE", "azure": "Archive"},
}
"""A generic name per service. Each pair has the same minimum storage duration and the same
kind of read-back: `cool` 30 days and online, `cold` 90 days and still online (milliseconds,
GLACIER_IR), `archive` 180 days and offline until rehydrated (hours)."""

_OWN: Mapping[Service, tuple[str, ...]] = {"s3": S3_CLASSES, "azure": AZURE_TIERS, "generic": GENERIC_TIERS}
_VARIABLE: Mapping[Service, str] = {"s3": "AWS_S3_STORAGE_CLASS", "azure": "AZURE_STORAGE_ACCESS_TIER"}


def allowed(service: Service) -> str:
    """The values a service takes, as an error names them."""
    own = ", ".join(_OWN[service])
    if service == "generic":
        return own
    return f"{own}, or a generic name ({', '.join(GENERIC_TIERS)})"


def canonical(service: Service, value: str) -> str:
    """`value` in the service's own spelling (compared without case; a generic name is mapped);
    `ValueError` naming the allowed values otherwise."""
    wanted = value.strip()
    for name in _OWN[service]:
        if name.lower() == wanted.lower():
            return name
    generic = GENERIC.get(wanted.lower())
    if generic is not None:  # (for "generic", its own names matched above)
        return generic[service]
    raise ValueError(f"unknown tier {value!r} for {_service_label(service)}: use {allowed(service)}")


def setting(service: Literal["s3", "azure"], value: object) -> str | None:
    """A tier from the environment (`AWS_S3_STORAGE_CLASS`, `AZURE_STORAGE_ACCESS_TIER`):
    empty means unset, anything else must be the service's own name or a generic one."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{_VARIABLE[service]} must be a string")
    if not value.strip():
        return None
    return canonical(service, value)


def for_provider(tier: Tier | None, provider: str, service: Service, default: str | None = None) -> str | None:
    """The tier one provider stores an upload in: its entry of a mapping (absent: `default`),
    or the one value mapped to its service. `ValueError` for a value it cannot take."""
    if tier is None:
        return default
    if isinstance(tier, Mapping):
        value = tier.get(provider)
        if value is None:
            return default
        where = f"tier[{provider!r}]"
    else:
        value = tier
        where = "tier"
    if not isinstance(value, str):
        raise ValueError(f"{where} must be a string, got {type(value).__name__}")
    try:
        return canonical(service, value)
    except ValueError as exc:
        hint = "" if isinstance(tier, Mapping) else (
            '; for a value of one service only, pass a mapping per provider name, e.g. '
            'tier={"s3": "STANDARD_IA", "azure": "Cool"}'
        )
        raise ValueError(f"{where} for provider {provider!r}: {exc}{hint}") from None


def check_names(tier: Tier | None, providers: frozenset[str] | set[str]) -> None:
    """A mapping may only name providers that exist (a typo would silently use the default)."""
    if isinstance(tier, Mapping):
        unknown = sorted(set(tier) - set(providers))
        if unknown:
            raise ValueError(
                f"tier names unknown providers {unknown}: the providers are {sorted(providers)}"
            )
    elif tier is not None and not isinstance(tier, str):
        raise ValueError(f"tier must be a string or a mapping of provider name to tier, got {type(tier).__name__}")


def _service_label(service: Service) -> str:
    return {"s3": "S3 (storage class)", "azure": "Azure (access tier)", "generic": "this provider"}[service]


__all__ = [
    "AZURE_TIERS", "GENERIC", "GENERIC_TIERS", "S3_CLASSES", "Tier",
    "allowed", "canonical", "check_names", "for_provider", "setting",
]
