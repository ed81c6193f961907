"""S3's error table and `map_error`: what each S3 error code means, with a reason and the fix.

A pure function of the exception and the request's context, applied by `unistore._request`
(which adds the shared transport fallback); `S3Provider.map_error` is this, with its bucket.
"""

from __future__ import annotations

from typing import Any

from .._errors import (
    RETRY_HINT,
    REWRITE_HINT,
    AuthenticationError,
    ContainerNotFoundError,
    Context,
    IntegrityError,
    NotFoundError,
    PermissionDeniedError,
    ProviderError,
    Rule,
    TransientError,
    already_exists,
    connection_failed,
    from_status,
    precondition_failed,
    short,
)

_HINT_KEYS = (
    "check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for temporary "
    "credentials), or unset them to use the standard AWS credential chain"
)
_HINT_BUCKET = (
    "create the bucket, or check AWS_RECORDING_STORAGE_BUCKET_NAME (and AWS_ENDPOINT_URL / "
    "AWS_DEFAULT_REGION)"
)
HINT_NETWORK = "check AWS_ENDPOINT_URL and the network path to S3"
HINT_RESTORE = (
    "restore it first: S3 RestoreObject (`aws s3api restore-object --bucket {bucket} --key {key} "
    "--restore-request Days=7`), which takes minutes (GLACIER, Expedited) to 48 hours (DEEP_ARCHIVE, "
    "Bulk); read it again once `head-object` shows `ongoing-request=\"false\"`, or read the copy "
    "another provider holds"
)
_ACTIONS = {
    "PutObject": "s3:PutObject",
    "CreateMultipartUpload": "s3:PutObject",
    "UploadPart": "s3:PutObject",
    "CompleteMultipartUpload": "s3:PutObject",
    "AbortMultipartUpload": "s3:AbortMultipartUpload",
    "ListMultipartUploads": "s3:ListBucketMultipartUploads",
    "GetObject": "s3:GetObject",
    "HeadObject": "s3:GetObject",
    "DeleteObject": "s3:DeleteObject",
    "ListObjectsV2": "s3:ListBucket",
}


CODES: dict[str, Rule] = {
    "NoSuchBucket": Rule(ContainerNotFoundError, "the bucket does not exist", _HINT_BUCKET),
    "NoSuchKey": Rule(NotFoundError, "no object under the key"),
    "NotFound": Rule(NotFoundError, "no object under the key (a HEAD answer)"),
    "404": Rule(NotFoundError, "a bodiless 404 (HEAD)"),
    "NoSuchUpload": Rule(
        NotFoundError, "the multipart upload is gone", "the upload was completed or aborted elsewhere; upload again"
    ),
    "InvalidAccessKeyId": Rule(AuthenticationError, "the access key is unknown", _HINT_KEYS),
    "SignatureDoesNotMatch": Rule(AuthenticationError, "the secret key is wrong", _HINT_KEYS),
    "ExpiredToken": Rule(AuthenticationError, "the session token expired", "refresh AWS_SESSION_TOKEN; " + _HINT_KEYS),
    "InvalidToken": Rule(AuthenticationError, "the session token is malformed", _HINT_KEYS),
    "TokenRefreshRequired": Rule(AuthenticationError, "the token must be refreshed", "refresh AWS_SESSION_TOKEN"),
    "AuthorizationHeaderMalformed": Rule(
        AuthenticationError, "signed for another region",
        "check AWS_DEFAULT_REGION (the bucket's region) and the credentials",
    ),
    "RequestTimeTooSkewed": Rule(
        AuthenticationError, "the clock is off", "this machine's clock is off by more than 15 minutes: sync it (NTP)"
    ),
    # the hint of a PermissionDeniedError names the IAM action (`map_error`)
    "AccessDenied": Rule(PermissionDeniedError, "the policy refuses the action"),
    "AllAccessDisabled": Rule(PermissionDeniedError, "all access to the bucket is disabled"),
    "AccountProblem": Rule(PermissionDeniedError, "the account is suspended or unpaid"),
    "403": Rule(PermissionDeniedError, "a bodiless 403 (HEAD): permission or credentials"),
    "BadDigest": Rule(IntegrityError, "the body does not match its Content-MD5", REWRITE_HINT),
    "InvalidDigest": Rule(IntegrityError, "the Content-MD5 is malformed", REWRITE_HINT),
    "XAmzContentSHA256Mismatch": Rule(IntegrityError, "the body does not match its SHA-256", "retry"),
    "SlowDown": Rule(TransientError, "throttled", "S3 is throttling this prefix; retried with backoff"),
    "Throttling": Rule(TransientError, "throttled", RETRY_HINT),
    "ThrottlingException": Rule(TransientError, "throttled", RETRY_HINT),
    "TooManyRequests": Rule(TransientError, "throttled", RETRY_HINT),
    "RequestTimeout": Rule(TransientError, "the body did not arrive in time", RETRY_HINT),
    "InternalError": Rule(TransientError, "a fault of the service", RETRY_HINT),
    "ServiceUnavailable": Rule(TransientError, "the service is overloaded", RETRY_HINT),
    "OperationAborted": Rule(TransientError, "a conflicting operation on the bucket is in progress", RETRY_HINT),
    "429": Rule(TransientError, "a bodiless 429 (HEAD)", RETRY_HINT),
    "500": Rule(TransientError, "a bodiless 500 (HEAD)", RETRY_HINT),
    "502": Rule(TransientError, "a bodiless 502 (HEAD)", RETRY_HINT),
    "503": Rule(TransientError, "a bodiless 503 (HEAD)", RETRY_HINT),
    "504": Rule(TransientError, "a bodiless 504 (HEAD)", RETRY_HINT),
    "ConditionalRequestConflict": Rule(TransientError, "a concurrent conditional write won the race", RETRY_HINT),
    "EntityTooSmall": Rule(ProviderError, "a part below 5 MiB", "parts must be at least 5 MiB (STORAGE_CHUNK_SIZE)"),
    "EntityTooLarge": Rule(
        ProviderError, "a single put above 5 GiB", "lower STORAGE_MULTIPART_THRESHOLD (single puts: 5 GiB)"
    ),
    "InvalidBucketName": Rule(ProviderError, "the bucket name is invalid", "check AWS_RECORDING_STORAGE_BUCKET_NAME"),
    "InvalidObjectState": Rule(
        ProviderError,
        "the object is in an archive storage class (GLACIER, DEEP_ARCHIVE or an Intelligent-Tiering "
        "archive tier) and not restored: it cannot be read until RestoreObject makes a copy readable",
        HINT_RESTORE,
    ),
    "InvalidStorageClass": Rule(
        ProviderError, "the service does not offer this storage class",
        "set AWS_S3_STORAGE_CLASS (or the upload's tier=) to a class this bucket supports; "
        "S3-compatible servers often accept only STANDARD and a few others",
    ),
    "PermanentRedirect": Rule(
        ProviderError, "the bucket is in another region", "set AWS_DEFAULT_REGION to the bucket's region"
    ),
}
"""S3 error code (or HTTP status, for bodiless HEAD answers) -> error class, reason, hint. Codes
are those of the S3 API reference ("List of error codes"); a status no code names falls back to
`_errors.from_status`. `PreconditionFailed`/412 and `ConditionalRequestConflict` under a
conditional create (`If-None-Match: *`) mean `AlreadyExistsError`."""

_CONDITIONAL = frozenset({"PreconditionFailed", "412"})


def map_error(exc: Exception, ctx: Context, bucket: str, location: str = "") -> ProviderError | None:
    """botocore's and the signed path's errors as unistore errors, through `CODES`; None for
    what `unistore._request` maps itself (aiohttp's errors, timeouts, resets). `location` (the
    endpoint or region) goes into a missing bucket's message, which names the bucket."""
    from botocore import exceptions as bx

    where = f"{ctx.op} on bucket {bucket!r}"
    fields: dict[str, Any] = {"provider": ctx.provider, "key": ctx.key}
    if isinstance(exc, bx.ClientError):
        error = exc.response.get("Error", {}) or {}
        status = (exc.response.get("ResponseMetadata", {}) or {}).get("HTTPStatusCode")
        code = str(error.get("Code") or status or "Unknown")
        text = short(error.get("Message") or "")
        message = f"{where} failed" + (f": {text}" if text else "")
        if ctx.conditional and (code in _CONDITIONAL or status == 412 or code == "ConditionalRequestConflict"):
            return already_exists(ctx, code, status)
        if code in _CONDITIONAL or status == 412:
            return precondition_failed(ctx, code, status, where)
        rule = CODES.get(code) or CODES.get(str(status))
        if code == "InvalidObjectState" and rule is not None:
            archived = f"{where} failed: {rule.reason}"
            hint = rule.hint.format(bucket=bucket, key=ctx.key or "<key>") if rule.hint else None
            return rule.error(archived, code=code, status=status, hint=hint, **fields)
        if rule is not None:
            mapped = rule.error(message, code=code, status=status, hint=rule.hint, **fields)
        elif status is not None:
            mapped = from_status(ctx, status, message, code, _HINT_KEYS if status == 401 else None)
        else:
            mapped = ProviderError(message, code=code, **fields)
        if isinstance(mapped, PermissionDeniedError):
            action = _ACTIONS.get(ctx.op, "s3:PutObject, s3:GetObject")
            mapped.hint = f"grant {action} on bucket {bucket!r} to these credentials (IAM or bucket policy)"
            if code == "403":  # a HEAD answer has no body to tell auth from permission
                mapped.hint += "; or " + _HINT_KEYS
            mapped.args = (mapped._format(),)
        if type(mapped) is NotFoundError and ctx.key is None:
            mapped = ContainerNotFoundError(message, code=code, status=status, hint=_HINT_BUCKET, **fields)
        if isinstance(mapped, ContainerNotFoundError):
            gone = f"{ctx.op} failed: bucket {bucket!r} does not exist" + (f" {location}" if location else "")
            return ContainerNotFoundError(gone, code=code, status=status, hint=_HINT_BUCKET, **fields)
        return mapped
    if isinstance(exc, bx.NoCredentialsError | bx.PartialCredentialsError | bx.CredentialRetrievalError):
        return AuthenticationError(
            f"{where}: no usable AWS credentials ({type(exc).__name__})", code=type(exc).__name__,
            hint="set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or configure the standard "
            "AWS credential chain (AWS_PROFILE, an instance or task role)", **fields,
        )
    if isinstance(exc, bx.SSLError):
        return ProviderError(
            f"{where}: TLS failed: {short(exc)}", code="SSLError",
            hint="check AWS_ENDPOINT_URL and the CA bundle (AWS_CA_BUNDLE)", **fields,
        )
    if isinstance(exc, bx.ChecksumError):
        return IntegrityError(f"{where}: {short(exc)}", code="ChecksumError", hint=REWRITE_HINT, **fields)
    if isinstance(exc, bx.HTTPClientError | bx.ConnectionError | bx.IncompleteReadError):
        return connection_failed(exc, ctx, HINT_NETWORK, where)
    if isinstance(exc, bx.ParamValidationError):
        return ProviderError(f"{where}: invalid request: {short(exc)}", code="ParamValidationError", **fields)
    if isinstance(exc, bx.BotoCoreError):
        return ProviderError(f"{where} failed: {short(exc)}", code=type(exc).__name__, **fields)
    return None  # aiohttp's, timeouts and resets: `_errors.from_transport`
