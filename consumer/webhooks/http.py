"""The HTTP client that delivers webhooks: pooled, pinned to checked addresses.

:class:`WebhookHTTPClient` sends ``httpx`` requests through an httpx transport that owns an
httpcore connection pool (keep-alive, keyed by scheme, host name and port). Its network backend
never resolves names: a connection to ``host:port`` may only be opened while a
:class:`~.ssrf.CheckedURL` for exactly that host and port is *pinned* for the current
thread (:meth:`WebhookHTTPClient.send` pins it), and goes to the addresses that check
validated - so the name is resolved once, by the check, and DNS rebinding has no second
lookup to exploit. Because the URL keeps the host name, the ``Host`` header, TLS SNI and
certificate verification all use the real name.

Always: TLS verification on (public CAs plus an optional extra CA bundle), TLS >= 1.2,
no redirects, no proxies or ``.netrc`` from the environment, no cookies, response bodies
read to at most 64 KiB.
"""

from __future__ import annotations

import contextlib
import contextvars
import email.utils
import ssl
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from flowbus.errors import BlockedURLError
from flowbus.extras import requires_extra

with requires_extra("webhooks", "webhooks"):
    import certifi
    import httpcore

from .ssrf import CheckedURL

__all__ = [
    "MAX_RESPONSE_BYTES",
    "HTTPResult",
    "WebhookHTTPClient",
    "make_ssl_context",
    "parse_retry_after",
]

#: Bytes of a response body read (and discarded); a longer body closes the connection.
MAX_RESPONSE_BYTES = 64 * 1024

_PINNED: contextvars.ContextVar[CheckedURL | None] = contextvars.ContextVar(
    "flowbus_webhook_pinned_target", default=None
)

#: httpcore exception -> httpx exception, so callers only deal with httpx's hierarchy (each
#: has the same name in both; a subclass comes before its base).
_EXCEPTIONS: tuple[tuple[type[Exception], type[httpx.HTTPError]], ...] = tuple(
    (getattr(httpcore, name), getattr(httpx, name))
    for name in (
        "ConnectTimeout",
        "ReadTimeout",
        "WriteTimeout",
        "PoolTimeout",
        "TimeoutException",
        "ConnectError",
        "ReadError",
        "WriteError",
        "NetworkError",
        "RemoteProtocolError",
        "LocalProtocolError",
        "ProtocolError",
        "UnsupportedProtocol",
    )
)


@contextlib.contextmanager
def _mapped_errors() -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        for source, target in _EXCEPTIONS:
            if isinstance(exc, source):
                raise target(str(exc)) from exc
        raise


def make_ssl_context(extra_ca_bundle: Path | str | None = None) -> ssl.SSLContext:
    """Verifying TLS context: certifi's CAs, plus ``extra_ca_bundle`` if given."""
    context = ssl.create_default_context(cafile=certifi.where())
    if extra_ca_bundle is not None:
        context.load_verify_locations(cafile=str(extra_ca_bundle))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    return context


class _PinnedBackend(httpcore.NetworkBackend):
    """Opens TCP connections only to the addresses of the target pinned for this thread."""

    def __init__(self) -> None:
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        target = _PINNED.get()
        if target is None or target.host != host.lower() or target.port != port:
            raise BlockedURLError(f"connection to {host}:{port} without a checked address")
        last_error: Exception | None = None
        for address in target.addresses:
            try:
                return self._inner.connect_tcp(
                    str(address), port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last_error = exc
        assert last_error is not None  # CheckedURL always has at least one address
        raise last_error

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        raise BlockedURLError("unix sockets are not webhook targets")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class _ResponseStream(httpx.SyncByteStream):
    def __init__(self, stream: Iterable[bytes]) -> None:
        self._stream = stream

    def __iter__(self) -> Iterator[bytes]:
        with _mapped_errors():
            yield from self._stream

    def close(self) -> None:
        close = getattr(self._stream, "close", None)
        if close is not None:
            with _mapped_errors():
                close()


class _PinnedTransport(httpx.BaseTransport):
    """An httpx transport over an httpcore pool with the pinned network backend."""

    def __init__(
        self,
        ssl_context: ssl.SSLContext,
        max_connections: int,
        max_keepalive_connections: int,
        keepalive_expiry: float,
    ) -> None:
        self._pool = httpcore.ConnectionPool(
            ssl_context=ssl_context,
            max_connections=max_connections,
            max_keepalive_connections=max_keepalive_connections,
            keepalive_expiry=keepalive_expiry,
            http1=True,
            http2=False,
            retries=0,
            network_backend=_PinnedBackend(),
        )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        assert isinstance(request.stream, httpx.SyncByteStream)
        core_request = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=request.url.raw_scheme,
                host=request.url.raw_host,
                port=request.url.port,
                target=request.url.raw_path,
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        with _mapped_errors():
            response = self._pool.handle_request(core_request)
        assert isinstance(response.stream, Iterable)
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_ResponseStream(response.stream),
            extensions=response.extensions,
        )

    def close(self) -> None:
        self._pool.close()


@dataclass(frozen=True, slots=True)
class HTTPResult:
    """What a delivery request got back: the status, how long it took, ``Retry-After``."""

    status_code: int
    latency_ms: float
    retry_after: float | None = None
    """Seconds the receiver asked to wait (``Retry-After``), if it said so."""


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds from now: delay-seconds or an HTTP date; else ``None``."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class WebhookHTTPClient:
    """A pooled keep-alive client that only talks to addresses :func:`check_url` approved.

    Thread-safe; share one per process. ``extra_ca_bundle`` adds trusted CAs (internal
    receivers); there is no way to turn verification off.
    """

    def __init__(
        self,
        *,
        extra_ca_bundle: Path | str | None = None,
        max_connections: int = 100,
        max_keepalive_connections: int = 20,
        keepalive_expiry: float = 30.0,
        user_agent: str | None = None,
    ) -> None:
        if user_agent is None:
            from flowbus import __version__

            user_agent = f"flowbus-webhooks/{__version__}"
        self.user_agent = user_agent
        # The transport is used directly rather than through ``httpx.Client``: the client
        # would add cookie handling and log full URLs (which may carry tokens), and there
        # is nothing else here it would do - no redirects, auth or proxies are wanted.
        self._transport = _PinnedTransport(
            make_ssl_context(extra_ca_bundle),
            max_connections,
            max_keepalive_connections,
            keepalive_expiry,
        )

    def send(
        self,
        target: CheckedURL,
        *,
        method: str,
        headers: Mapping[str, str],
        body: bytes,
        timeout: float,
    ) -> HTTPResult:
        """Send ``body`` to ``target``; return the response status (redirects not followed).

        Raises ``httpx.TimeoutException`` / ``httpx.TransportError`` on network failures and
        :class:`~flowbus.errors.BlockedURLError` if a connection would leave the pin.
        """
        request = httpx.Request(
            method,
            target.url,
            headers={**headers, "user-agent": self.user_agent},
            content=body,
            extensions={"timeout": httpx.Timeout(timeout).as_dict()},
        )
        token = _PINNED.set(target)
        started = time.perf_counter()
        try:
            response = self._transport.handle_request(request)
            response.request = request
            retry_after = parse_retry_after(response.headers.get("retry-after"))
            try:
                received = 0
                for chunk in response.iter_raw():
                    received += len(chunk)
                    if received > MAX_RESPONSE_BYTES:
                        break
            finally:
                response.close()
        finally:
            _PINNED.reset(token)
        latency_ms = (time.perf_counter() - started) * 1000.0
        return HTTPResult(response.status_code, latency_ms, retry_after)

    def close(self) -> None:
        """Close every pooled connection."""
        self._transport.close()

    def __enter__(self) -> WebhookHTTPClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
