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
streams server-sent events; a streamed body may raise ``DropConnection`` to cut the
connection in the middle of the answer (see FakeOpenAI's chat completions).
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
import struct
import sys
import threading
import time
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


class DropConnection(Exception):
    """Raised by a streamed body: close the connection now, without ending the response
    (the client sees the body stop short, as when a server or proxy dies mid-answer)."""


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
        httpd = _HTTPServer(("127.0.0.1", 0), _RequestHandler)
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


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return  # a client hung up on a kept-alive connection: not worth a traceback
        super().handle_error(request, client_address)


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
        except DropConnection:
            self.close_connection = True  # the socket is closed without the last chunk

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


@dataclass
class _StreamFault:
    after_chunks: int  # content chunks sent before the fault
    drop: bool = False  # close the connection
    stall: float | None = None  # or pause this long (or until stop()), then go on
    error: str | None = None  # or send OpenAI's in-stream error event and end


ChatReply = str | Callable[[dict[str, Any]], str]


class FakeOpenAI(FakeServer):
    """An OpenAI-compatible server (base URL: ``server.base_url``, i.e. ``url + "/v1"``):

    - POST /v1/embeddings;
    - POST /v1/chat/completions, streamed (server-sent ``chat.completion.chunk`` events
      as OpenAI sends them: a first chunk with the role, one chunk per word of the reply,
      a last chunk with finish_reason, a usage chunk when ``stream_options.include_usage``
      is true, then ``data: [DONE]``) or not (one ``chat.completion``).

    api_key=None accepts any or no key (like Ollama); models, when given, are the only
    model names it knows (others get OpenAI's 404 model_not_found).

    The chat reply is ``reply``: a string, or a function of the request body (a dict)
    returning one. Longer than max_tokens (counted as len/4 per word), it is cut there
    with finish_reason "length". ``send_usage = False`` plays a server that never sends
    usage. Streams can be broken, stalled or failed part-way (``break_stream_next``,
    ``stall_stream_next``, ``error_stream_next``); ``chat_requests`` are the bodies of
    the chat requests received, oldest first.
    """

    EMBEDDING_FIELDS = frozenset({"model", "input", "encoding_format", "dimensions", "user"})
    MAX_INPUTS = 2048
    CHAT_FIELDS = frozenset(
        {"model", "messages", "stream", "stream_options", "temperature", "top_p", "n"}
        | {"max_tokens", "max_completion_tokens", "stop", "user", "seed", "metadata"}
        | {"presence_penalty", "frequency_penalty", "logit_bias", "logprobs", "top_logprobs"}
        | {"response_format", "tools", "tool_choice", "parallel_tool_calls", "store"}
        | {"reasoning_effort", "service_tier", "prompt_cache_key", "safety_identifier"}
    )
    CHAT_ROLES = ("system", "assistant", "user", "function", "tool", "developer")
    MESSAGE_FIELDS = frozenset({"role", "content", "name", "tool_calls", "tool_call_id"})
    DEFAULT_REPLY = "Calibrate the chuck every 500 operating hours [1]."

    def __init__(
        self,
        *,
        api_key: str | None = "test-openai-key",
        dimensions: int = 1536,
        models: Iterable[str] | None = None,
        reply: ChatReply = DEFAULT_REPLY,
    ) -> None:
        super().__init__()
        self.api_key = api_key
        self.dimensions = dimensions
        self.models = set(models) if models is not None else None
        self.reply: ChatReply = reply
        self.send_usage = True
        # Seconds between streamed words (a slow model: 0.05 is 20 tokens/s).
        self.token_delay = 0.0
        self._stream_faults: deque[_StreamFault] = deque()
        self.route("POST", "/v1/embeddings", self.embeddings)
        self.route("POST", "/v1/chat/completions", self.chat_completions)

    # -- scripting the chat stream ---------------------------------------------------------

    def break_stream_next(self, count: int = 1, *, after_chunks: int) -> None:
        """The next count streamed answers stop after after_chunks words: the connection
        is closed without the rest of the body (no finish_reason, no [DONE])."""
        self._add_stream_faults(count, _StreamFault(after_chunks, drop=True))

    def stall_stream_next(self, count: int = 1, *, after_chunks: int, seconds: float) -> None:
        """The next count streamed answers pause for seconds (or until stop()) after
        after_chunks words, then go on (a client with a shorter read timeout gives up)."""
        self._add_stream_faults(count, _StreamFault(after_chunks, stall=seconds))

    def error_stream_next(
        self,
        count: int = 1,
        *,
        after_chunks: int,
        message: str = "The server had an error while processing your request. Sorry about that!",
    ) -> None:
        """The next count streamed answers send OpenAI's in-stream error event after
        after_chunks words, then end."""
        self._add_stream_faults(count, _StreamFault(after_chunks, error=message))

    def _add_stream_faults(self, count: int, fault: _StreamFault) -> None:
        with self._lock:
            self._stream_faults.extend(fault for _ in range(count))

    def reset(self) -> None:
        super().reset()
        with self._lock:
            self._stream_faults.clear()

    @property
    def chat_requests(self) -> list[dict[str, Any]]:
        with self._lock:
            return [
                r.json
                for r in self.requests
                if r.path == "/v1/chat/completions" and isinstance(r.json, dict)
            ]

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
        model = self._check_model(body)
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

    # -- chat completions ---------------------------------------------------------------

    def chat_completions(self, request: RecordedRequest) -> Response:
        if (refusal := self.check_key(request)) is not None:
            return refusal
        body = self.json_object(request)
        model, stream, include_usage, max_tokens = self._check_chat(body)
        reply = self.reply(body) if callable(self.reply) else self.reply
        if not isinstance(reply, str):
            raise TypeError(f"FakeOpenAI.reply must give a string, got {reply!r}")
        words = re.findall(r"\s*\S+|\s+$", reply)
        finish_reason = "stop"
        if max_tokens is not None and sum(_approx_tokens(w) for w in words) > max_tokens:
            finish_reason = "length"
            kept, total = [], 0
            for word in words:
                total += _approx_tokens(word)
                if total > max_tokens:
                    break
                kept.append(word)
            words = kept
        usage = self.chat_usage(body["messages"], "".join(words))
        completion_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        created = int(time.time())
        if not stream:
            message = {"role": "assistant", "content": "".join(words), "refusal": None}
            return Response.json(
                {
                    "id": completion_id,
                    "object": "chat.completion",
                    "created": created,
                    "model": model,
                    "system_fingerprint": "fp_fake",
                    "choices": [
                        {
                            "index": 0,
                            "message": message,
                            "logprobs": None,
                            "finish_reason": finish_reason,
                        }
                    ],
                    "usage": usage if self.send_usage else None,
                }
            )
        with self._lock:
            fault = self._stream_faults.popleft() if self._stream_faults else None
        return Response.sse(
            self._chat_chunks(
                completion_id,
                created,
                model,
                words,
                finish_reason,
                usage if include_usage and self.send_usage else None,
                include_usage,
                fault,
            ),
            done=False,  # _chat_chunks sends [DONE] itself, unless a fault ends it first
        )

    def _chat_chunks(
        self,
        completion_id: str,
        created: int,
        model: str,
        words: list[str],
        finish_reason: str,
        usage: dict[str, Any] | None,
        include_usage: bool,
        fault: _StreamFault | None,
    ) -> Iterator[Any]:
        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            data = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "system_fingerprint": "fp_fake",
                "choices": [
                    {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
                ],
            }
            if include_usage:
                data["usage"] = None
            return data

        yield chunk({"role": "assistant", "content": "", "refusal": None})
        for sent in range(len(words) + 1):
            if fault is not None and sent == fault.after_chunks:
                if fault.drop:
                    raise DropConnection
                if fault.error is not None:
                    yield {
                        "error": {
                            "message": fault.error,
                            "type": "server_error",
                            "param": None,
                            "code": None,
                        }
                    }
                    return
                if fault.stall is not None:
                    self._stopping.wait(fault.stall)
            if sent < len(words):
                if self.token_delay and self._stopping.wait(self.token_delay):
                    return  # the server is stopping
                yield chunk({"content": words[sent]})
        yield chunk({}, finish_reason)
        if usage is not None:
            yield {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "system_fingerprint": "fp_fake",
                "choices": [],
                "usage": usage,
            }
        yield "[DONE]"

    @staticmethod
    def chat_usage(messages: list[dict[str, Any]], completion: str) -> dict[str, Any]:
        prompt = 0
        for message in messages:
            content = message.get("content")
            if isinstance(content, list):
                content = " ".join(part.get("text", "") for part in content)
            prompt += 4 + _approx_tokens(content or "")
        completion_tokens = _approx_tokens(completion) if completion else 0
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }

    def _check_model(self, body: dict[str, Any]) -> str:
        """The model field as OpenAI checks it: present, and one this server knows."""
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise BadRequest("you must provide a model parameter", param="model")
        if self.models is not None and model not in self.models:
            raise BadRequest(
                f"The model `{model}` does not exist or you do not have access to it.",
                status=404,
                code="model_not_found",
            )
        return model

    def _check_chat(self, body: dict[str, Any]) -> tuple[str, bool, bool, int | None]:
        """Checks a chat completions body as OpenAI does; returns (model, stream,
        include_usage, max_tokens)."""
        unknown = sorted(set(body) - self.CHAT_FIELDS)
        if unknown:
            raise BadRequest(f"Unrecognized request argument supplied: {unknown[0]}")
        model = self._check_model(body)
        messages = body.get("messages")
        if not isinstance(messages, list):
            raise BadRequest(
                f"Invalid type for 'messages': expected an array, but got {_json_type(messages)} "
                "instead.",
                param="messages",
                code="invalid_type",
            )
        if not messages:
            raise BadRequest("[] is too short - 'messages'", param="messages")
        for index, message in enumerate(messages):
            where = f"messages[{index}]"
            if not isinstance(message, dict):
                raise BadRequest(
                    f"Invalid type for '{where}': expected an object, but got "
                    f"{_json_type(message)} instead.",
                    param=where,
                    code="invalid_type",
                )
            extra = sorted(set(message) - self.MESSAGE_FIELDS)
            if extra:
                raise BadRequest(
                    f"Additional properties are not allowed ('{extra[0]}' was unexpected) - "
                    f"'messages.{index}'",
                    param=where,
                )
            role = message.get("role")
            if role not in self.CHAT_ROLES:
                raise BadRequest(
                    f"Invalid value: {role!r}. Supported values are: 'system', 'assistant', "
                    "'user', 'function', 'tool', and 'developer'.",
                    param=f"{where}.role",
                    code="invalid_value",
                )
            content = message.get("content")
            text_parts = isinstance(content, list) and all(
                isinstance(part, dict)
                and part.get("type") == "text"
                and isinstance(part.get("text"), str)
                for part in content
            )
            if not (isinstance(content, str) or text_parts):
                if content is None and role == "assistant" and message.get("tool_calls"):
                    continue
                raise BadRequest(
                    f"Invalid type for '{where}.content': expected one of a string or array "
                    f"of objects, but got {_json_type(content)} instead.",
                    param=f"{where}.content",
                    code="invalid_type",
                )
        stream = body.get("stream")
        if stream is not None and not isinstance(stream, bool):
            raise BadRequest(
                f"Invalid type for 'stream': expected a boolean, but got {_json_type(stream)} "
                "instead.",
                param="stream",
                code="invalid_type",
            )
        include_usage = False
        options = body.get("stream_options")
        if options is not None:
            if not stream:
                raise BadRequest(
                    "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                    param="stream_options",
                )
            if not isinstance(options, dict) or set(options) - {
                "include_usage",
                "include_obfuscation",
            }:
                raise BadRequest("Invalid 'stream_options'.", param="stream_options")
            include_usage = options.get("include_usage", False)
            if not isinstance(include_usage, bool):
                raise BadRequest(
                    "Invalid type for 'stream_options.include_usage': expected a boolean, "
                    f"but got {_json_type(include_usage)} instead.",
                    param="stream_options.include_usage",
                    code="invalid_type",
                )
        _check_number(body, "temperature", 0, 2)
        _check_number(body, "top_p", 0, 1)
        _check_number(body, "presence_penalty", -2, 2)
        _check_number(body, "frequency_penalty", -2, 2)
        max_tokens = None
        for name in ("max_tokens", "max_completion_tokens"):
            if body.get(name) is not None:
                max_tokens = _check_integer(body, name, 1)
        if body.get("n") is not None and _check_integer(body, "n", 1) != 1:
            raise BadRequest("This fake server only answers with n=1.", param="n")
        stop = body.get("stop")
        if stop is not None and not (
            isinstance(stop, str)
            or (isinstance(stop, list) and len(stop) <= 4 and all(isinstance(s, str) for s in stop))
        ):
            raise BadRequest("'stop' must be a string or a list of up to 4 strings.", param="stop")
        if body.get("user") is not None and not isinstance(body["user"], str):
            raise BadRequest("'user' must be a string.", param="user")
        return model, bool(stream), include_usage, max_tokens


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a decimal"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _check_number(body: dict[str, Any], name: str, low: float, high: float) -> None:
    value = body.get(name)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadRequest(
            f"Invalid type for '{name}': expected a decimal, but got {_json_type(value)} instead.",
            param=name,
            code="invalid_type",
        )
    if value < low:
        raise BadRequest(
            f"Invalid '{name}': decimal below minimum value. Expected a value >= {low:g}, "
            f"but got {value:g} instead.",
            param=name,
            code="decimal_below_min_value",
        )
    if value > high:
        raise BadRequest(
            f"Invalid '{name}': decimal above maximum value. Expected a value <= {high:g}, "
            f"but got {value:g} instead.",
            param=name,
            code="decimal_above_max_value",
        )


def _check_integer(body: dict[str, Any], name: str, low: int) -> int:
    value = body.get(name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest(
            f"Invalid type for '{name}': expected an integer, but got {_json_type(value)} instead.",
            param=name,
            code="invalid_type",
        )
    if value < low:
        raise BadRequest(
            f"Invalid '{name}': integer below minimum value. Expected a value >= {low}, but "
            f"got {value} instead.",
            param=name,
            code="integer_below_min_value",
        )
    return value
