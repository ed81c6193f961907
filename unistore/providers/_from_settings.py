"""Providers built from settings: `build_providers` (one per name in `STORAGE_UPLOAD_MODE`) and
the bodies of `S3Provider.from_settings` / `AzureBlobProvider.from_settings`.

Imports no provider module and no SDK at load: each provider class is imported when its name is
configured.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypedDict

if TYPE_CHECKING:
    from .._multipart import Transfer
    from .._settings import AzureSettings, S3Settings, StorageSettings
    from ._protocol import Provider
    from .azure import AzureBlobProvider
    from .s3 import S3Provider


class RootOptions(TypedDict, total=False):
    """The constructor keywords the root `STORAGE_*` settings give a cloud provider."""

    connect_timeout: float
    read_timeout: float
    overwrite: bool


def root_options(root: StorageSettings | None) -> RootOptions:
    """The root settings' keywords; none without root settings (the constructor's defaults)."""
    if root is None:
        return {}
    return {"connect_timeout": root.connect_timeout, "read_timeout": root.read_timeout, "overwrite": root.overwrite}


def s3_provider(
    cls: type[S3Provider], s3: S3Settings, root: StorageSettings | None, transfer: Transfer | None
) -> S3Provider:
    return cls(
        bucket=s3.require_bucket(),
        region=s3.region,
        endpoint_url=s3.endpoint_url,
        access_key_id=s3.access_key_id,
        secret_access_key=s3.secret_access_key,
        session_token=s3.session_token,
        addressing_style=s3.addressing_style,
        checksum_calculation=s3.checksum_calculation,
        checksum=s3.checksum,
        storage_class=s3.storage_class,
        transfer=transfer,
        **root_options(root),
    )


def azure_provider(
    cls: type[AzureBlobProvider], az: AzureSettings, root: StorageSettings | None, transfer: Transfer | None
) -> AzureBlobProvider:
    return cls(
        container=az.require_container(),
        account_name=az.account_name,
        connection_string=az.connection_string,
        account_key=az.account_key,
        account_url=az.account_url,
        client_id=az.client_id,
        checksum=az.checksum,
        access_tier=az.access_tier,
        transfer=transfer,
        **root_options(root),
    )


def build_providers(settings: StorageSettings) -> list[Provider]:
    """One provider per name in `STORAGE_UPLOAD_MODE`, configured from `settings`."""
    from .._multipart import Transfer
    from .._retry import RetryPolicy

    transfer = Transfer(
        threshold=int(settings.multipart_threshold),
        chunk_size=int(settings.chunk_size),
        max_concurrency=settings.max_concurrency,
        retry=RetryPolicy(attempts=settings.retry_attempts, deadline=settings.retry_deadline),
        upload_timeout=settings.upload_timeout,
        read_timeout=settings.read_timeout,
        min_send_rate=int(settings.min_send_rate),
    )
    providers: list[Provider] = []
    for name in settings.providers:
        if name == "s3":
            from .s3 import S3Provider

            assert settings.s3 is not None
            providers.append(S3Provider.from_settings(settings.s3, settings, transfer=transfer))
        elif name == "azure":
            from .azure import AzureBlobProvider

            assert settings.azure is not None
            providers.append(AzureBlobProvider.from_settings(settings.azure, settings, transfer=transfer))
        elif name == "local":
            from .local import LocalProvider

            providers.append(
                LocalProvider(settings.local_root, transfer=transfer, overwrite=settings.overwrite)
            )
        elif name == "memory":
            from .memory import MemoryProvider

            providers.append(MemoryProvider(transfer=transfer, overwrite=settings.overwrite))
    return providers
