"""A small, blocking HTTP client for tools, over `wasi:http/outgoing-handler`.

Every request goes to the airlock host, which decides it against the
profile's `[net] allow` list *before* anything leaves the machine, records
it in the run's evidence log, and injects upstream credentials (the
profile's `[credentials.*] inject`) into matching requests. A tool never
adds an API key itself: it sends a plain request and the host adds the
`Authorization` header on the way out.

    from airlock_sdk import http

    response = http.get("https://api.weather.example/v1/current",
                        params={"city": "Oslo"})
    response.raise_for_status()
    current = response.json()

Behaviour worth knowing (the same as the Rust SDK's `airlock_sdk::http`):

- Blocking, whole bodies: the request body is written whole, the response
  body read whole; the host caps both (and the time) per profile.
- Redirects are not followed: a `3xx` is returned as a `Response`.
- Only `http` and `https` URLs with an ASCII host and no `user:password@`.
- A request the host refuses raises `HttpError` whose `code` is the
  `wasi:http` error-code in its WIT spelling: `HTTP-request-denied` (the
  profile refused it; the run's evidence names the rule:
  `airlock runs show RUN`), `destination-IP-prohibited`, `DNS-error`,
  `connection-refused`, `HTTP-response-body-size`, ...

What it defends against: a malformed URL, method or header reaching the
host (refused here with `InvalidRequest`, nothing sent), and a refusal
surfacing as an opaque failure (`HttpError` names the request and the
code).
"""

from __future__ import annotations

import json as _json
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple, Union
from urllib.parse import quote, urlencode, urlsplit

from . import ToolError

# Imported at the top: a component contains only the modules imported while
# it is built (see the package's __init__). Absent outside a component.
try:
    from componentize_py_types import Err
    from wit_world.imports import outgoing_handler, streams
    from wit_world.imports import wasi_http_types as t
except ImportError:
    Err = None  # type: ignore[assignment, misc]
    outgoing_handler = streams = t = None  # type: ignore[assignment]

__all__ = [
    "Response",
    "HttpError",
    "InvalidRequest",
    "StatusError",
    "request",
    "get",
    "post",
    "put",
    "delete",
]

# `blocking-write-and-flush` accepts at most 4096 bytes per call.
_WRITE_CHUNK = 4096
# Bytes asked for per `blocking-read` of the response body.
_READ_CHUNK = 64 * 1024

Headers = Union[Mapping[str, str], Iterable[Tuple[str, str]]]


class HttpError(ToolError):
    """The host refused or could not complete a request.

    `code` is the `wasi:http` error-code in its WIT spelling (e.g.
    `HTTP-request-denied`), `detail` what it carries, if anything.
    """

    def __init__(self, method: str, url: str, code: str, detail: Optional[str] = None) -> None:
        self.method = method
        self.url = url
        self.code = code
        self.detail = detail
        text = _describe_code(code)
        if detail:
            text += f": {detail}"
        super().__init__(f"{method} {url}: {text} (wasi:http error-code {code})")

    @property
    def denied(self) -> bool:
        """Whether the profile's network policy refused the request."""
        return self.code in ("HTTP-request-denied", "destination-IP-prohibited")


class InvalidRequest(ToolError):
    """The request could not be built (bad URL, method or header); nothing was sent."""


class StatusError(ToolError):
    """`Response.raise_for_status` on a status other than 2xx."""

    def __init__(self, response: "Response") -> None:
        self.response = response
        body = response.body[:200].decode("utf-8", "replace").strip()
        text = f"{response.method} {response.url} returned HTTP {response.status}"
        super().__init__(f"{text}: {body}" if body else text)


class Response:
    """An HTTP response: status, headers (names in lower case) and the whole body."""

    def __init__(
        self, method: str, url: str, status: int, headers: List[Tuple[str, str]], body: bytes
    ) -> None:
        self.method = method
        self.url = url
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def ok(self) -> bool:
        """Whether the status is 2xx."""
        return 200 <= self.status < 300

    def header(self, name: str) -> Optional[str]:
        """The first value of header `name` (case-insensitive), if any."""
        wanted = name.lower()
        return next((v for n, v in self.headers if n.lower() == wanted), None)

    def text(self) -> str:
        """The body as UTF-8 text (`ToolError` if it is not UTF-8)."""
        try:
            return self.body.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ToolError(f"response body of {self.method} {self.url} is not UTF-8: {e}") from None

    def json(self) -> Any:
        """The body parsed as JSON (`ToolError` if it is not JSON)."""
        try:
            return _json.loads(self.body)
        except ValueError as e:
            raise ToolError(f"response body of {self.method} {self.url} is not JSON: {e}") from None

    def raise_for_status(self) -> "Response":
        """Raises `StatusError` unless the status is 2xx; returns self."""
        if not self.ok:
            raise StatusError(self)
        return self


def split_url(url: str, params: Optional[Mapping[str, Any]] = None) -> Tuple[str, str, str]:
    """(scheme, authority, path-with-query) of an absolute http(s) URL.

    The fragment is dropped (it is never sent), an empty path becomes `/`,
    `params` are appended to the query, percent-encoded. Raises
    `InvalidRequest` for other schemes, a missing or non-ASCII host, and
    `user:password@`.
    """
    try:
        parts = urlsplit(url)
    except ValueError as e:
        raise InvalidRequest(f"invalid HTTP request: {url!r} is not a URL: {e}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise InvalidRequest(f"invalid HTTP request: {url!r} is not an http:// or https:// URL")
    if "@" in parts.netloc:
        raise InvalidRequest(
            f"invalid HTTP request: {url!r} has a user:password@ part; "
            "credentials come from the profile, not the URL"
        )
    authority = parts.netloc
    if not authority or not parts.hostname or not authority.isascii() or " " in authority:
        raise InvalidRequest(
            f"invalid HTTP request: {url!r} needs an ASCII host (use the xn-- form for "
            "international names)"
        )
    path = quote(parts.path or "/", safe="/%!$&'()*+,;=:@-._~")
    query = quote(parts.query, safe="/?%!$&'()*+,;=:@-._~")
    if params:
        extra = urlencode(list(params.items()), quote_via=quote)
        query = f"{query}&{extra}" if query else extra
    return scheme, authority, f"{path}?{query}" if query else path


def _header_list(headers: Optional[Headers]) -> List[Tuple[str, str]]:
    if headers is None:
        return []
    if isinstance(headers, Mapping):
        return [(str(k), str(v)) for k, v in headers.items()]
    return [(str(k), str(v)) for k, v in headers]


def request(
    method: str,
    url: str,
    *,
    params: Optional[Mapping[str, Any]] = None,
    headers: Optional[Headers] = None,
    json: Any = None,
    data: Union[bytes, str, None] = None,
) -> Response:
    """Sends a request through the host and returns the response, whatever its status.

    `json=` sends a JSON body (and `content-type: application/json` unless
    given); `data=` sends bytes or text as is. Raises `InvalidRequest`
    before sending anything when the URL, method or a header is malformed,
    and `HttpError` when the host refuses or cannot complete the request.
    """
    if t is None:
        raise ToolError("airlock_sdk.http works only inside a component built by airlock build")
    scheme, authority, path = split_url(url, params)
    shown = f"{scheme}://{authority}{path}"
    header_list = _header_list(headers)
    if json is not None and data is not None:
        raise InvalidRequest("invalid HTTP request: give json= or data=, not both")
    body = b""
    if json is not None:
        body = _json.dumps(json).encode("utf-8")
        if not any(n.lower() == "content-type" for n, _ in header_list):
            header_list.append(("content-type", "application/json"))
    elif isinstance(data, str):
        body = data.encode("utf-8")
    elif data is not None:
        body = bytes(data)

    fields = t.Fields()
    for name, value in header_list:
        try:
            fields.append(name, value.encode("utf-8"))
        except Err as e:
            raise InvalidRequest(f"invalid HTTP request: {_header_error(name, e.value)}") from None
    outgoing = t.OutgoingRequest(fields)
    try:
        outgoing.set_method(_method(t, method))
        outgoing.set_scheme(t.Scheme_Http() if scheme == "http" else t.Scheme_Https())
        outgoing.set_authority(authority)
        outgoing.set_path_with_query(path)
    except Err:
        raise InvalidRequest(f"invalid HTTP request: {method} {shown} was refused by the host") from None
    out_body = outgoing.body()

    # Hand the request to the host first, then stream the body: the host
    # reads the body while it decides, so a large body cannot fill a buffer
    # nobody drains.
    try:
        future = outgoing_handler.handle(outgoing, None)
    except Err as e:
        raise _http_error(method, shown, e.value) from None
    write_error: Optional[BaseException] = None
    try:
        if body:
            with out_body.write() as stream:
                for i in range(0, len(body), _WRITE_CHUNK):
                    stream.blocking_write_and_flush(body[i : i + _WRITE_CHUNK])
        t.OutgoingBody.finish(out_body, None)
    except Err as e:
        write_error = e
    # The response (or the host's refusal) explains a failed body write
    # better than the write error does, so it wins.
    with future:
        while True:
            result = future.get()
            if result is None:
                with future.subscribe() as pollable:
                    pollable.block()
                continue
            break
    if isinstance(result, Err):
        raise ToolError(f"{method} {shown}: the response was already taken")
    inner = result.value
    if isinstance(inner, Err):
        raise _http_error(method, shown, inner.value)
    if write_error is not None:
        raise ToolError(f"{method} {shown}: HTTP body transfer failed: {write_error}")
    with inner.value as response:
        status = response.status()
        with response.headers() as h:
            response_headers = [(n, v.decode("utf-8", "replace")) for n, v in h.entries()]
        incoming = response.consume()
        chunks: List[bytes] = []
        with incoming.stream() as stream:
            while True:
                try:
                    chunks.append(stream.blocking_read(_READ_CHUNK))
                except Err as e:
                    if isinstance(e.value, streams.StreamError_Closed):
                        break
                    code = t.http_error_code(e.value.value)
                    if code is not None:
                        raise _http_error(method, shown, code) from None
                    raise ToolError(
                        f"{method} {shown}: HTTP body transfer failed: {e.value.value.to_debug_string()}"
                    ) from None
        # Trailers are not exposed; finishing the body releases it.
        with t.IncomingBody.finish(incoming):
            pass
    return Response(method, shown, status, response_headers, b"".join(chunks))


def get(url: str, **kwargs: Any) -> Response:
    """`request("GET", url, ...)`."""
    return request("GET", url, **kwargs)


def post(url: str, **kwargs: Any) -> Response:
    """`request("POST", url, ...)`."""
    return request("POST", url, **kwargs)


def put(url: str, **kwargs: Any) -> Response:
    """`request("PUT", url, ...)`."""
    return request("PUT", url, **kwargs)


def delete(url: str, **kwargs: Any) -> Response:
    """`request("DELETE", url, ...)`."""
    return request("DELETE", url, **kwargs)


_TOKEN_CHARS = set("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def check_method(method: str) -> str:
    """Returns `method` if it is an HTTP token, else raises `InvalidRequest`."""
    if not method or not set(method) <= _TOKEN_CHARS:
        raise InvalidRequest(f"invalid HTTP request: {method!r} is not a valid HTTP method")
    return method


def _method(t: Any, method: str) -> Any:
    known = {
        "GET": t.Method_Get,
        "HEAD": t.Method_Head,
        "POST": t.Method_Post,
        "PUT": t.Method_Put,
        "DELETE": t.Method_Delete,
        "CONNECT": t.Method_Connect,
        "OPTIONS": t.Method_Options,
        "TRACE": t.Method_Trace,
        "PATCH": t.Method_Patch,
    }
    cls = known.get(check_method(method))
    return cls() if cls is not None else t.Method_Other(method)


def _header_error(name: str, error: Any) -> str:
    kind = type(error).__name__
    if kind.endswith("Forbidden"):
        return f"header {name!r} is not allowed by the host"
    if kind.endswith("Immutable"):
        return f"header {name!r} could not be set"
    return f"header {name!r} has an invalid name or value"


def _http_error(method: str, url: str, code: Any) -> HttpError:
    """The WIT spelling of an `error-code` case and what it carries."""
    name = type(code).__name__.removeprefix("ErrorCode_")
    spelled = _WIT_SPELLING.get(name, name)
    value = getattr(code, "value", None)
    detail: Optional[str] = None
    if isinstance(value, (str, int)):
        detail = str(value)
    elif value is not None:
        shown = {k: v for k, v in vars(value).items() if v is not None} if hasattr(value, "__dict__") else {}
        detail = ", ".join(f"{k} {v}" for k, v in shown.items()) or None
    return HttpError(method, url, spelled, detail)


def _describe_code(code: str) -> str:
    if code == "HTTP-request-denied":
        return "HTTP request denied by the host's network policy"
    if code == "destination-IP-prohibited":
        return "destination IP address prohibited by the host's network policy"
    return code.replace("-", " ")


# Binding class names (CamelCase) -> the WIT case names.
_WIT_SPELLING: Dict[str, str] = {
    "DnsTimeout": "DNS-timeout",
    "DnsError": "DNS-error",
    "DestinationNotFound": "destination-not-found",
    "DestinationUnavailable": "destination-unavailable",
    "DestinationIpProhibited": "destination-IP-prohibited",
    "DestinationIpUnroutable": "destination-IP-unroutable",
    "ConnectionRefused": "connection-refused",
    "ConnectionTerminated": "connection-terminated",
    "ConnectionTimeout": "connection-timeout",
    "ConnectionReadTimeout": "connection-read-timeout",
    "ConnectionWriteTimeout": "connection-write-timeout",
    "ConnectionLimitReached": "connection-limit-reached",
    "TlsProtocolError": "TLS-protocol-error",
    "TlsCertificateError": "TLS-certificate-error",
    "TlsAlertReceived": "TLS-alert-received",
    "HttpRequestDenied": "HTTP-request-denied",
    "HttpRequestLengthRequired": "HTTP-request-length-required",
    "HttpRequestBodySize": "HTTP-request-body-size",
    "HttpRequestMethodInvalid": "HTTP-request-method-invalid",
    "HttpRequestUriInvalid": "HTTP-request-URI-invalid",
    "HttpRequestUriTooLong": "HTTP-request-URI-too-long",
    "HttpRequestHeaderSectionSize": "HTTP-request-header-section-size",
    "HttpRequestHeaderSize": "HTTP-request-header-size",
    "HttpRequestTrailerSectionSize": "HTTP-request-trailer-section-size",
    "HttpRequestTrailerSize": "HTTP-request-trailer-size",
    "HttpResponseIncomplete": "HTTP-response-incomplete",
    "HttpResponseHeaderSectionSize": "HTTP-response-header-section-size",
    "HttpResponseHeaderSize": "HTTP-response-header-size",
    "HttpResponseBodySize": "HTTP-response-body-size",
    "HttpResponseTrailerSectionSize": "HTTP-response-trailer-section-size",
    "HttpResponseTrailerSize": "HTTP-response-trailer-size",
    "HttpResponseTransferCoding": "HTTP-response-transfer-coding",
    "HttpResponseContentCoding": "HTTP-response-content-coding",
    "HttpResponseTimeout": "HTTP-response-timeout",
    "HttpUpgradeFailed": "HTTP-upgrade-failed",
    "HttpProtocolError": "HTTP-protocol-error",
    "LoopDetected": "loop-detected",
    "ConfigurationError": "configuration-error",
    "InternalError": "internal-error",
}
