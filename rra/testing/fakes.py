"""Fake HTTP servers for the external AI APIs, so that tests never touch the network.

Each fake listens on 127.0.0.1 on a free port (a ThreadingHTTPServer in a daemon
thread), speaks the real protocol through the real clients, checks the request format
(method, path, auth header, JSON fields and their types) and answers 400 in the real
API's error shape when a request is wrong. It records every request it receives, and it
can be told to fail or stall the next calls:

    with FakeCohere(api_key="test-key") as cohere:
        provider = CohereProvider(api_key="test-key", base_url=cohere.url)
        cohere.fail_next(status=429, retry_after=7)
        ...
        assert cohere.requests[-1].json["input_type"] == "search_query"

As a pytest fixture: ``with FakeOpenAI() as server: yield server`` (or start()/stop()).

A new endpoint is a method that takes a RecordedRequest and returns a Response (raise
BadRequest for a malformed request), registered with ``route()``. ``Response.sse()``
streams server-sent events, ready for a ``/v1/chat/completions`` handler.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import struct
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit


def fake_vector(text: str, dimensions: int, *, salt: str = "") -> list[float]:
    """A deterministic unit vector for text (the same text always gets the same vector)."""
    raw = hashlib.shake_256(f"{salt}\0{text}".encode()).digest(2 * dimensions)
    values = [(n / 32767.5) - 1.0 for n in struct.unpack(f"<{dimensions}H", raw)]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [v / norm for v in values]


@dataclass
class RecordedRequest:
    method: str
    path: str  # without the query string
    query: dict[str, list[str]]
    headers: dict[str, str]  # names in lower case
    body: bytes

    @cached_property
    def json(self) -> Any:
        """The body parsed as JSON, or None when it is not JSON."""
        try:
            return json.loads(self.body)
        except ValueError:
            return None


@dataclass
class Response:
    status: int = 200
    body: bytes | Iterable[bytes] = b""  # an iterable is streamed (chunked encoding)
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Self:
        return cls(
            status,
            json.dumps(data).encode(),
            {"Content-Type": "application/json", **(headers or {})},
        )

    @classmethod
    def sse(cls, events: Iterable[Any], *, done: bool = True, status: int = 200) -> Self:
        """Server-sent events: each event is a dict (sent as JSON) or a ready string;
        done=True ends with OpenAI's ``data: [DONE]``."""

        def stream() -> Iterator[bytes]:
            for event in events:
                data = event if isinstance(event, str) else json.dumps(event)
                yield f"data: {data}\n\n".encode()
            if done:
                yield b"data: [DONE]\n\n"

        return cls(
            status,
            stream(),
            {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"},
        )


class BadRequest(Exception):
    """Raised by a handler: the request is malformed; answered with the API's 400."""

    def __init__(self, message: str, *, status: int = 400, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.extra = extra


@dataclass
class _Fault:
    status: int | None = None  # answer with this error...
    message: str | None = None
    retry_after: float | None = None
    stall: float | None = None  # ...or wait this long first (then answer normally)


Handler = Callable[[RecordedRequest], Response]


class FakeServer:
    """A loopback HTTP server with routes, request recording and injected faults."""

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self._routes: dict[tuple[str, str], Handler] = {}
        self._faults: deque[_Fault] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- life cycle --------------------------------------------------------------------

    def start(self) -> Self:
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), _RequestHandler)
        httpd.daemon_threads = True
        httpd.fake = self  # type: ignore[attr-defined]
        self._httpd = httpd
        self._stopping.clear()
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"{type(self).__name__}:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # releases stalled requests
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._httpd is not None, "start() the server first"
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- behaviour ---------------------------------------------------------------------

    def route(self, method: str, path: str, handler: Handler) -> None:
        self._routes[(method.upper(), path)] = handler

    def fail_next(
        self,
        count: int = 1,
        *,
        status: int,
        message: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        """Answer the next count calls with this error (the API's error shape)."""
        with self._lock:
            self._faults.extend(
                _Fault(status=status, message=message, retry_after=retry_after)
                for _ in range(count)
            )

    def stall_next(self, count: int = 1, *, seconds: float = 30.0) -> None:
        """Hold the next count calls for seconds (or until stop()) before answering."""
        with self._lock:
            self._faults.extend(_Fault(stall=seconds) for _ in range(count))

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self._faults.clear()

    def error(self, status: int, message: str, **extra: Any) -> Response:
        """An error answer in this API's shape (override per API)."""
        return Response.json({"message": message}, status)

    def default_message(self, status: int) -> str:
        return {
            400: "bad request",
            401: "unauthorized",
            403: "forbidden",
            404: "not found",
            429: "too many requests",
            500: "internal server error",
            502: "bad gateway",
            503: "service unavailable",
        }.get(status, f"HTTP {status}")

    # -- dispatch (called on the server's threads) ---------------------------------------

    def _dispatch(self, request: RecordedRequest) -> Response:
        with self._lock:
            self.requests.append(request)
        handler = self._routes.get((request.method, request.path))
        if handler is None:
            if any(path == request.path for _, path in self._routes):
                return self.error(405, f"method {request.method} not allowed")
            return self.error(404, f"no route for {request.method} {request.path}")
        with self._lock:
            fault = self._faults.popleft() if self._faults else None
        if fault is not None and fault.stall is not None:
            self._stopping.wait(fault.stall)
        elif fault is not None and fault.status is not None:
            response = self.error(fault.status, fault.message or self.default_message(fault.status))
            if fault.retry_after is not None:
                response.headers["Retry-After"] = f"{fault.retry_after:g}"
            return response
        try:
            return handler(request)
        except BadRequest as exc:
            return self.error(exc.status, exc.message, **exc.extra)

    # -- request checks shared by handlers ------------------------------------------------

    @staticmethod
    def json_object(request: RecordedRequest) -> dict[str, Any]:
        content_type = request.headers.get("content-type", "")
        if not content_type.startswith("application/json"):
            raise BadRequest(f"Content-Type must be application/json, got {content_type!r}")
        if not isinstance(request.json, dict):
            raise BadRequest("the request body must be a JSON object")
        return request.json


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 30  # idle keep-alive connections are closed after this

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_PATCH(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            parts = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _handle(self) -> None:
        parts = urlsplit(self.path)
        request = RecordedRequest(
            method=self.command,
            path=parts.path,
            query=parse_qs(parts.query),
            headers={name.lower(): value for name, value in self.headers.items()},
            body=self._read_body(),
        )
        response = self.server.fake._dispatch(request)  # type: ignore[attr-defined]
        try:
            self._send(response)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up (e.g. its timeout)

    def _send(self, response: Response) -> None:
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        if isinstance(response.body, bytes):
            self.send_header("Content-Length", str(len(response.body)))
            self.end_headers()
            self.wfile.write(response.body)
            return
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for part in response.body:
            if part:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output clean


def _bearer_key(request: RecordedRequest) -> str | None:
    value = request.headers.get("authorization", "")
    scheme, _, key = value.partition(" ")
    return key.strip() if scheme.lower() == "bearer" and key.strip() else None


def _approx_tokens(text: str) -> int:
    return max(1, (len(text) + 3) // 4)


# --- Cohere --------------------------------------------------------------------------


class FakeCohere(FakeServer):
    """Cohere's v2 API: POST /v2/embed. Errors look like Cohere's: {"id", "message"}."""

    INPUT_TYPES = ("search_document", "search_query", "classification", "clustering", "image")
    EMBEDDING_TYPES = ("float", "int8", "uint8", "binary", "ubinary", "base64")
    EMBED_FIELDS = frozenset(
        {"model", "texts", "images", "inputs", "input_type", "embedding_types"}
        | {"output_dimension", "max_tokens", "truncate"}
    )
    MAX_TEXTS = 96

    def __init__(self, *, api_key: str = "test-cohere-key", dimensions: int = 1536) -> None:
        super().__init__()
        self.api_key = api_key
        self.dimensions = dimensions
        self.route("POST", "/v2/embed", self.embed)

    def error(self, status: int, message: str, **extra: Any) -> Response:
        return Response.json({"id": str(uuid.uuid4()), "message": message}, status)

    def default_message(self, status: int) -> str:
        return {
            401: "invalid api token",
            429: "You are using a Trial key, which is limited to 5 API calls / minute.",
            500: "internal server error, this has been reported to our developers",
        }.get(status, super().default_message(status))

    def embed(self, request: RecordedRequest) -> Response:
        if _bearer_key(request) != self.api_key:
            return self.error(401, "invalid api token")
        body = self.json_object(request)
        unknown = sorted(set(body) - self.EMBED_FIELDS)
        if unknown:
            raise BadRequest(f"invalid request: unknown field(s): {', '.join(unknown)}")
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise BadRequest("invalid request: model is required")
        texts = body.get("texts")
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            raise BadRequest("invalid request: texts must be a list of strings")
        if not texts:
            raise BadRequest("invalid request: texts must not be empty")
        if len(texts) > self.MAX_TEXTS:
            raise BadRequest(
                f"invalid request: total number of texts must be at most {self.MAX_TEXTS} "
                f"- received {len(texts)}"
            )
        if body.get("input_type") not in self.INPUT_TYPES:
            raise BadRequest(
                "invalid request: valid input_type must be provided with the provided model"
            )
        types = body.get("embedding_types")
        if (
            not isinstance(types, list)
            or not types
            or not all(t in self.EMBEDDING_TYPES for t in types)
        ):
            raise BadRequest(
                "invalid request: embedding_types must be a non-empty list of "
                + ", ".join(self.EMBEDDING_TYPES)
            )
        if types != ["float"]:
            raise BadRequest("invalid request: this fake only returns float embeddings")
        dimensions = body.get("output_dimension", self.dimensions)
        if "output_dimension" in body and dimensions not in (256, 512, 1024, 1536):
            raise BadRequest("invalid request: output_dimension must be 256, 512, 1024 or 1536")
        if body.get("truncate", "END") not in ("NONE", "START", "END"):
            raise BadRequest("invalid request: truncate must be one of NONE, START, END")
        return Response.json(
            {
                "id": str(uuid.uuid4()),
                "embeddings": {"float": [fake_vector(t, dimensions, salt=model) for t in texts]},
                "texts": texts,
                "meta": {
                    "api_version": {"version": "2"},
                    "billed_units": {"input_tokens": sum(_approx_tokens(t) for t in texts)},
                },
                "response_type": "embeddings_by_type",
            }
        )


# --- OpenAI-compatible ---------------------------------------------------------------------


class FakeOpenAI(FakeServer):
    """An OpenAI-compatible server: POST /v1/embeddings (base URL: ``server.url + "/v1"``).

    api_key=None accepts any or no key (like Ollama); models, when given, are the only
    model names it knows (others get OpenAI's 404 model_not_found).
    """

    EMBEDDING_FIELDS = frozenset({"model", "input", "encoding_format", "dimensions", "user"})
    MAX_INPUTS = 2048

    def __init__(
        self,
        *,
        api_key: str | None = "test-openai-key",
        dimensions: int = 1536,
        models: Iterable[str] | None = None,
    ) -> None:
        super().__init__()
        self.api_key = api_key
        self.dimensions = dimensions
        self.models = set(models) if models is not None else None
        self.route("POST", "/v1/embeddings", self.embeddings)

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def error(
        self,
        status: int,
        message: str,
        *,
        type: str | None = None,  # OpenAI's field name
        code: str | None = None,
        param: str | None = None,
        **extra: Any,
    ) -> Response:
        default_type = {401: "invalid_request_error", 429: "requests"}.get(
            status, "server_error" if status >= 500 else "invalid_request_error"
        )
        default_code = {401: "invalid_api_key", 429: "rate_limit_exceeded"}.get(status)
        return Response.json(
            {
                "error": {
                    "message": message,
                    "type": type or default_type,
                    "param": param,
                    "code": code or default_code,
                }
            },
            status,
        )

    def default_message(self, status: int) -> str:
        return {
            401: "Incorrect API key provided.",
            429: "Rate limit reached for requests. Please try again later.",
            500: "The server had an error while processing your request. Sorry about that!",
        }.get(status, super().default_message(status))

    def check_key(self, request: RecordedRequest) -> Response | None:
        if self.api_key is None:
            return None
        key = _bearer_key(request)
        if key is None:
            return self.error(
                401,
                "You didn't provide an API key. You need to provide your API key in an "
                "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                code=None,
            )
        if key != self.api_key:
            return self.error(401, f"Incorrect API key provided: {key[:3]}***{key[-4:]}.")
        return None

    def embeddings(self, request: RecordedRequest) -> Response:
        if (refusal := self.check_key(request)) is not None:
            return refusal
        body = self.json_object(request)
        unknown = sorted(set(body) - self.EMBEDDING_FIELDS)
        if unknown:
            raise BadRequest(f"Unrecognized request argument supplied: {unknown[0]}")
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise BadRequest("you must provide a model parameter", param="model")
        if self.models is not None and model not in self.models:
            raise BadRequest(
                f"The model `{model}` does not exist or you do not have access to it.",
                status=404,
                code="model_not_found",
            )
        inputs = body.get("input")
        if isinstance(inputs, str):
            inputs = [inputs]
        if not isinstance(inputs, list) or not inputs or len(inputs) > self.MAX_INPUTS:
            raise BadRequest(
                f"'$.input' must be a string or a list of 1 to {self.MAX_INPUTS} strings.",
                param="input",
            )
        texts = []
        for item in inputs:
            if isinstance(item, str) and item:
                texts.append(item)
            elif isinstance(item, list) and item and all(isinstance(t, int) for t in item):
                texts.append(" ".join(map(str, item)))  # token ids
            elif isinstance(item, int) and all(isinstance(t, int) for t in inputs):
                texts = [" ".join(map(str, inputs))]
                break
            else:
                raise BadRequest("'$.input' is invalid: empty string or wrong type.", param="input")
        encoding = body.get("encoding_format", "float")
        if encoding not in ("float", "base64"):
            raise BadRequest(
                f"Invalid value for 'encoding_format': {encoding!r}. Supported: float, base64.",
                param="encoding_format",
            )
        dimensions = body.get("dimensions", self.dimensions)
        if "dimensions" in body and (
            not isinstance(dimensions, int) or isinstance(dimensions, bool) or dimensions < 1
        ):
            raise BadRequest("'dimensions' must be a positive integer.", param="dimensions")
        if "user" in body and not isinstance(body["user"], str):
            raise BadRequest("'user' must be a string.", param="user")
        data = []
        for index, text in enumerate(texts):
            vector: Any = fake_vector(text, dimensions, salt=model)
            if encoding == "base64":
                vector = base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode()
            data.append({"object": "embedding", "index": index, "embedding": vector})
        tokens = sum(_approx_tokens(t) for t in texts)
        return Response.json(
            {
                "object": "list",
                "data": data,
                "model": model,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )
