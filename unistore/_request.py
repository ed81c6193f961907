"""The one request path: every request a provider sends to its service goes through `call`.

In this order, for each request:

1. the per-request deadline (`unistore._deadline.with_request_deadline`), for a request that
   sends a body of `size` bytes: the read timeout plus the body's time at the slowest rate;
2. the retry (`unistore._retry.retry`; this is its only caller), of transient faults only;
3. the provider's `map_error(exc, ctx)`: a pure function over its code table, which returns
   None for what it does not know;
4. the shared fallbacks of `unistore._errors`: `from_transport` for connections that failed,
   broke off or timed out; the status fallbacks (`from_status`) a provider's `map_error` uses
   for codes its table does not name;
5. the error context (provider, operation, key), which every raised error carries.

An exception that is already a `UnistoreError` passes unchanged; one no layer recognises
propagates as it is (a bug stays visible). The signed request paths exist to save loop CPU, so
this layer stays light: no closure per request (the arguments pass through `retry`), and the
error context is built only when a request fails.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias, TypeVar

from . import _telemetry
from ._deadline import with_request_deadline
from ._errors import AuthenticationError, Context, ProviderError, UnistoreError, from_transport, short
from ._retry import retry

if TYPE_CHECKING:
    from ._multipart import Transfer

T = TypeVar("T")


class Target(Protocol):
    """What the request path needs of a provider."""

    @property
    def name(self) -> str: ...

    transfer: Transfer
    network_hint: str
    """The fix named when a connection to the service fails."""

    def map_error(self, exc: Exception, ctx: Context) -> ProviderError | None: ...


_Request: TypeAlias = tuple[Target, str, str | None, Callable[..., Awaitable[T]], tuple[Any, ...], int | None, bool]
"""`_attempt`'s arguments: target, op, key, fn, args, size, conditional."""


async def call(
    target: Target,
    op: str,
    key: str | None,
    fn: Callable[..., Awaitable[T]],
    *args: Any,
    size: int | None = None,
    conditional: bool = False,
) -> T:
    """`fn(*args)`, retried as one request of operation `op` on `key` (None: the container),
    with errors mapped; `size` (the body's bytes) puts the attempt under its request deadline,
    `conditional` marks a conditional create, whose precondition failure means the key is taken."""
    what = f"{op} of {key!r}" if key is not None else op
    tel = _telemetry.active()
    if tel is None:
        return await retry(_attempt, target.transfer.retry, what, target, op, key, fn, args, size, conditional)
    return await _traced(tel, what, (target, op, key, fn, args, size, conditional))


async def _traced(tel: _telemetry.Telemetry, what: str, request: _Request[T]) -> T:
    """`call` under a `unistore.request` span, counted in the request metrics."""
    target, op, _, _, _, size, _ = request
    attempts = 0

    async def counted(*attempt_args: Any) -> T:
        nonlocal attempts
        attempts += 1
        return await _attempt(*attempt_args)

    # "part 17": the operation is "part" (metric labels stay few), its number an attribute
    operation = op.rstrip("0123456789")
    attrs: dict[str, Any] = {_telemetry.PROVIDER: target.name, _telemetry.OPERATION: operation.rstrip() or op}
    if len(operation) < len(op):
        attrs["unistore.part_number"] = int(op[len(operation):])
    if size is not None:
        attrs[_telemetry.BYTES] = size
    with tel.span("unistore.request", attrs) as span:
        try:
            result = await retry(counted, target.transfer.retry, what, *request)
        except BaseException as exc:
            code = _telemetry.error_code(exc)
            _request_done(tel, span, attrs, attempts, code)
            raise
        _request_done(tel, span, attrs, attempts, None)
        return result


def _request_done(
    tel: _telemetry.Telemetry, span: Any, attrs: dict[str, Any], attempts: int, code: str | None
) -> None:
    outcome = "ok" if code is None else "failed"
    span.set_attributes({_telemetry.ATTEMPTS: attempts, _telemetry.OUTCOME: outcome})
    labels = {_telemetry.PROVIDER: attrs[_telemetry.PROVIDER], _telemetry.OPERATION: attrs[_telemetry.OPERATION],
              _telemetry.OUTCOME: outcome}
    if code is not None:
        tel.fail(span, code)
        labels[_telemetry.ERROR_TYPE] = code
    tel.requests.add(1, labels)
    if attempts > 1:
        tel.retries.add(attempts - 1, {_telemetry.PROVIDER: labels[_telemetry.PROVIDER],
                                       _telemetry.OPERATION: labels[_telemetry.OPERATION]})


async def _attempt(
    target: Target,
    op: str,
    key: str | None,
    fn: Callable[..., Awaitable[T]],
    args: tuple[Any, ...],
    size: int | None,
    conditional: bool,
) -> T:
    try:
        if size is None:
            return await fn(*args)
        limit = target.transfer.request_timeout(size)
        return await with_request_deadline(fn(*args), limit, size, target.name, key)
    except UnistoreError:
        raise
    except Exception as exc:
        error = translate(target, exc, Context(target.name, op, key, conditional))
        if error is None:
            raise
        raise error from _cause(error, exc)


def translate(target: Target, exc: Exception, ctx: Context) -> ProviderError | None:
    """What `exc` means as a unistore error (steps 3 and 4 above); None: nobody knows it."""
    error = target.map_error(exc, ctx)
    if error is None:
        error = from_transport(exc, ctx, target.network_hint)
    if error is None and isinstance(exc, ValueError):
        error = ProviderError(f"{ctx.op} failed: {short(exc)}", provider=ctx.provider, key=ctx.key,
                              code=type(exc).__name__)
    return error


class mapped:
    """`with mapped(target, op, key):` maps what the block raises as `call` does, once, without
    retry or deadline: one step inside a request the caller retries as a whole (a primitive
    under the part driver), or a read from a response already open."""

    __slots__ = ("conditional", "key", "op", "target")

    def __init__(self, target: Target, op: str, key: str | None, conditional: bool = False) -> None:
        self.target, self.op, self.key, self.conditional = target, op, key, conditional

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if not isinstance(exc, Exception) or isinstance(exc, UnistoreError):
            return
        error = translate(self.target, exc, Context(self.target.name, self.op, self.key, self.conditional))
        if error is not None:
            raise error from _cause(error, exc)


def _cause(error: ProviderError, exc: Exception) -> Exception | None:
    """What an error is chained to: nothing for an authentication failure, whose SDK exception
    may quote the signature or the string-to-sign."""
    return None if isinstance(error, AuthenticationError) else exc
