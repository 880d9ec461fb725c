"""The Open Inference Protocol (REST v2, and KServe v1) as a lean ASGI application.

Routing is a split of the path, requests are parsed with orjson straight into NumPy, and
the per-model objects (predictor, metrics) are resolved once per request by dictionary
lookups. Errors are ``DockyardError`` subclasses, answered as ``{"error": "..."}`` with the
status their class declares.

Every request passes, before routing, the caller checks (one pass over the headers): the
``Host`` must be an address of this server (DNS rebinding) and an ``Origin``, when a browser
sends one, this server's own or an allowed one. POST bodies must be JSON (or the binary
extension's octet-stream for inference) when they say what they are, stay within the size
limits (as sent and decompressed), and are decompressed in bounded steps, the large ones in a
worker thread. The repository extension needs the bearer token (inference too, when asked);
without a token it is refused unless the server was started with ``--no-auth``.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
import zlib
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
import orjson

from dockyard.errors import (
    DockyardError,
    Forbidden,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    Unauthorized,
    UnsupportedMediaType,
)
from dockyard.serving.codec import (
    DATATYPES,
    InferInput,
    InferRequest,
    TensorError,
    decode_request,
    encode_response,
    nesting,
    parse_json,
)
from dockyard.serving.limits import TOKEN_ENV
from dockyard.serving.repository import LoadedModel, ModelNotReadyError, Repository
from dockyard.serving.settings import ServerSettings
from dockyard.version import __version__

log = logging.getLogger("dockyard.serving")
Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
Head = dict[bytes, bytes]
EXTENSIONS = ["binary_tensor_data", "model_repository", "kserve_v1"]
HEADER_LENGTH = b"inference-header-content-length"
# the only request headers the server reads, collected in one pass per request
WANTED = frozenset(
    {
        b"host",
        b"origin",
        b"authorization",
        b"content-type",
        b"content-length",
        b"content-encoding",
        HEADER_LENGTH,
    }
)
JSON_TYPES = frozenset({b"application/json"})
INFER_TYPES = frozenset({b"application/json", b"application/octet-stream"})
INFLATE_STEP = 1 << 20  # bytes inflated on the event loop; the rest in a worker thread
DECODE_INLINE = 256 << 10  # larger bodies are decoded in a worker thread
SEEN_HOSTS = 64  # accepted Host values remembered (a set lookup instead of parsing)
CHALLENGE = (b"www-authenticate", b'Bearer realm="dockyard-serving"')
INVALID_TOKEN = (b"www-authenticate", b'Bearer realm="dockyard-serving", error="invalid_token"')


class Response:
    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
        self.status, self.body, self.headers = status, body, headers


JSON = b"application/json"


def json_response(status: int, data: Any) -> Response:
    return Response(
        status, orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY), [(b"content-type", JSON)]
    )


class Disconnected(Exception):
    """The client went away before its body arrived: there is nobody to answer."""


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"the request body is larger than {limit} bytes (max_body_bytes)")


class Inflater:
    """Decompresses a body in steps of bounded output, refusing it past ``limit`` bytes.

    ``zlib.decompressobj(...).decompress(data, max_length)`` never produces more than asked,
    so a small body that inflates to gigabytes costs at most ``limit`` bytes and the time to
    produce them. One gzip member or zlib stream per body, as HTTP clients send: concatenated
    gzip members are refused (each would cost a copy of the rest of the body, quadratic in
    the number of empty members a client can pack into 64 MiB).
    """

    WBITS = {b"gzip": 31, b"x-gzip": 31, b"deflate": 15}

    def __init__(self, body: bytes, encoding: bytes, limit: int) -> None:
        self.encoding = encoding
        self.wbits = self.WBITS[encoding]
        self.limit = limit
        self.inflater = zlib.decompressobj(self.wbits)
        self.pending = body
        self.parts: list[bytes] = []
        self.size = 0

    def run(self, budget: int) -> bool:
        """Inflate at most ``budget`` more bytes; True once the whole body is inflated."""
        try:
            while budget > 0:
                ask = min(budget, self.limit - self.size + 1, INFLATE_STEP)
                before = len(self.pending)
                chunk = self.inflater.decompress(self.pending, ask)
                self.pending = self.inflater.unconsumed_tail
                self.size += len(chunk)
                budget -= len(chunk)
                if self.size > self.limit:
                    raise PayloadTooLarge(
                        f"the request body inflates to more than {self.limit} bytes "
                        "(max_decompressed_bytes)"
                    )
                self.parts.append(chunk)
                if self.inflater.eof:
                    if self.wbits == 31 and self.inflater.unused_data.strip(b"\0"):
                        raise zlib.error("data after the end of the gzip stream")
                    return True
                if not chunk and len(self.pending) == before:  # no progress: input ran out
                    raise zlib.error("incomplete or truncated stream")
        except zlib.error as exc:
            raise InvalidRequest(
                f"the body is not valid {self.encoding.decode()} data: {exc}"
            ) from exc
        return False

    def body(self) -> bytes:
        return b"".join(self.parts)


async def inflate(body: bytes, encoding: bytes, limit: int) -> bytes:
    """A compressed request body (tritonclient's request_compression_algorithm), decompressed
    on the event loop up to ``INFLATE_STEP`` bytes and beyond that in a worker thread (zlib
    releases the interpreter lock), never past ``limit`` bytes."""
    encoding = encoding.strip().lower()
    if encoding == b"identity":
        return body
    if encoding not in Inflater.WBITS:
        raise UnsupportedMediaType(
            f"unsupported Content-Encoding {encoding.decode(errors='replace')!r}; "
            "use gzip or deflate"
        )
    inflater = Inflater(body, encoding, limit)
    if not inflater.run(INFLATE_STEP):
        await asyncio.to_thread(inflater.run, limit + 1)
    return inflater.body()


def _hostname(host: bytes) -> bytes:
    """``Host`` without its port, lower case (``[::1]:8080`` → ``::1``)."""
    host = host.lower()
    if host.startswith(b"["):
        return host[1 : host.find(b"]")]
    return host.partition(b":")[0]


class InferenceApp:
    def __init__(
        self,
        repository: Repository,
        on_startup: Callable[[], Awaitable[None]] | None = None,
        settings: ServerSettings | None = None,
    ) -> None:
        self.repo = repository
        self.metrics = repository.metrics
        self.on_startup = on_startup
        self.settings = settings = settings or ServerSettings()
        self.max_body = settings.max_body_bytes
        self.max_inflated = settings.max_decompressed_bytes
        self.max_elements = settings.max_elements
        self.max_depth = settings.max_depth
        self.limits = {"max_elements": self.max_elements, "max_depth": self.max_depth}
        self.auth_inference = settings.auth_inference
        self.token = settings.token_bytes()
        self.hosts = settings.host_names()
        self.seen_hosts: set[bytes] = set()
        self.max_body_digits = len(str(self.max_body))
        self.origins = settings.origins()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        extra: tuple[tuple[bytes, bytes], ...] = ()
        try:
            head: Head = {k: v for k, v in scope["headers"] if k in WANTED}
            if b"origin" in head or (
                self.hosts is not None and head.get(b"host") not in self.seen_hosts
            ):
                self.check_caller(head)
            response = await self.route(scope, receive, head)
        except Disconnected:
            return
        except DockyardError as exc:
            response = json_response(exc.status, {"error": str(exc)})
            if isinstance(exc, Unauthorized):
                extra = (INVALID_TOKEN if b"authorization" in head else CHALLENGE,)
        except Exception as exc:
            log.exception("request failed")
            response = json_response(500, {"error": f"{type(exc).__name__}: {exc}"})
        headers = [
            *response.headers,
            *extra,
            (b"content-length", str(len(response.body)).encode()),
        ]
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        await send({"type": "http.response.body", "body": response.body})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                if self.on_startup is not None:
                    await self.on_startup()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.repo.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    # -- who may call ----------------------------------------------------------------------
    def check_caller(self, head: Head) -> None:
        """Host (DNS rebinding) and Origin (pages of other sites) — a few compares."""
        host = head.get(b"host")
        if self.hosts is not None and host is not None and host not in self.seen_hosts:
            if _hostname(host) not in self.hosts:
                raise Forbidden(
                    f"Host {host.decode(errors='replace')!r} is not an address of this server",
                    hint="add it with --allowed-host (DOCKYARD_SERVING_ALLOWED_HOSTS)",
                )
            if len(self.seen_hosts) < SEEN_HOSTS:  # the few Host values clients use
                self.seen_hosts.add(host)
        origin = head.get(b"origin")
        if origin is not None:
            origin = origin.lower().rstrip(b"/")
            if origin not in self.origins and (
                host is None or origin.partition(b"://")[2] != host.lower()
            ):
                raise Forbidden(
                    f"requests from the web page at {origin.decode(errors='replace')} "
                    "are not accepted",
                    hint="allow it with --allowed-origin (DOCKYARD_SERVING_ALLOWED_ORIGINS)",
                )

    def authorize(self, head: Head, what: str) -> None:
        """The bearer token, when the server has one (401 without it or with another)."""
        if self.token is None:
            return
        given = head.get(b"authorization")
        if given is None:
            raise Unauthorized(f"{what} needs a bearer token (Authorization: Bearer ...)")
        scheme, _, credentials = given.partition(b" ")
        if scheme.lower() != b"bearer" or not hmac.compare_digest(credentials.strip(), self.token):
            raise Unauthorized(f"{what}: the bearer token is not valid")

    @staticmethod
    def check_media(head: Head, accepted: frozenset[bytes]) -> None:
        """A body must say it is JSON (or binary tensors) if it says anything: the types a
        browser may send from another site without asking (forms, text/plain) are refused.
        Without Content-Type it is accepted: tritonclient sends none."""
        given = head.get(b"content-type")
        if (
            given is not None
            and given not in accepted
            and given.partition(b";")[0].strip().lower() not in accepted
        ):
            raise UnsupportedMediaType(
                f"unsupported Content-Type {given.decode(errors='replace')!r}; send "
                + " or ".join(t.decode() for t in sorted(accepted))
            )

    async def read(self, receive: Receive, head: Head) -> bytes:
        """The request body within the size limits, decompressed; refused (413) before it is
        read when its Content-Length is too large, else as soon as it grows too large. How
        long it may take is bounded by the protocol (``body_timeout``, protocol.py)."""
        limit = self.max_body
        length = head.get(b"content-length")
        if (
            length is not None
            and len(length) >= self.max_body_digits
            and length.isdigit()
            and int(length) > limit
        ):
            raise _too_large(limit)
        message = await receive()
        body: bytes = message.get("body", b"")
        if message.get("more_body"):
            chunks = [body]
            size = len(body)
            while message.get("more_body"):
                message = await receive()
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > limit:
                    raise _too_large(limit)
                chunks.append(chunk)
            body = b"".join(chunks)
        if message["type"] == "http.disconnect":
            raise Disconnected
        if len(body) > limit:
            raise _too_large(limit)
        encoding = head.get(b"content-encoding")
        if encoding is not None:
            body = await inflate(body, encoding, self.max_inflated)
        return body

    # -- routes ----------------------------------------------------------------------------
    async def route(self, scope: Scope, receive: Receive, head: Head) -> Response:
        method = scope["method"]
        parts = scope["path"].strip("/").split("/")
        first = parts[0]
        if first == "v2":
            return await self.v2(method, parts[1:], scope, receive, head)
        if first == "v1":
            return await self.v1(method, parts[1:], receive, head)
        if first == "metrics" and method == "GET":
            return Response(
                200, self.metrics.render(), [(b"content-type", b"text/plain; version=0.0.4")]
            )
        raise NotFound(f"no route {method} {scope['path']}")

    # -- v2 -----------------------------------------------------------------------------
    async def v2(
        self, method: str, rest: list[str], scope: Scope, receive: Receive, head: Head
    ) -> Response:
        if rest and rest[0] == "models" and len(rest) >= 2:
            name, tail, version = rest[1], rest[2:], None
            if len(tail) >= 2 and tail[0] == "versions":
                version, tail = tail[1], tail[2:]
            if tail == ["infer"] and method == "POST":
                return await self.infer(receive, head, name, version)
            if not tail and method == "GET":
                model = self.repo.get(name, version)
                return json_response(200, model.metadata(self.repo.versions(name)))
            if tail == ["ready"] and method == "GET":
                try:
                    ready = self.repo.get(name, version).ready
                except ModelNotReadyError:
                    ready = False
                return json_response(200 if ready else 503, {"name": name, "ready": ready})
        elif rest == [] and method == "GET":
            return json_response(
                200, {"name": "dockyard", "version": __version__, "extensions": EXTENSIONS}
            )
        elif rest == ["health", "live"]:
            return json_response(200, {"live": True})
        elif rest == ["health", "ready"]:
            ready = self.repo.ready
            return json_response(200 if ready else 503, {"ready": ready})
        elif rest == ["models"] and method == "GET":
            return json_response(200, {"models": sorted(self.repo.models)})
        elif rest and rest[0] == "repository" and method == "POST":
            return await self.repository(rest[1:], receive, head)
        raise NotFound(f"no route {method} /v2/{'/'.join(rest)}")

    async def repository(self, rest: list[str], receive: Receive, head: Head) -> Response:
        if self.token is None and not self.settings.no_auth:
            raise Forbidden(
                "the repository extension is off: this server was started without a token",
                hint=f"give one in {TOKEN_ENV} or --token-file, or start it with --no-auth",
            )
        self.authorize(head, "the repository extension")
        self.check_media(head, JSON_TYPES)
        await self.read(receive, head)  # parameters (config overrides) are not supported
        if rest == ["index"]:
            return json_response(200, self.repo.index())
        if len(rest) == 3 and rest[0] == "models" and rest[2] in ("load", "unload"):
            if rest[2] == "load":
                await self.repo.load(rest[1])
            else:
                await self.repo.unload(rest[1])
            return json_response(200, {})
        raise NotFound(f"no route POST /v2/repository/{'/'.join(rest)}")

    async def infer(self, receive: Receive, head: Head, name: str, version: str | None) -> Response:
        started = time.perf_counter()
        if self.auth_inference:
            self.authorize(head, "inference")
        if head.get(b"content-type", JSON) not in INFER_TYPES:
            self.check_media(head, INFER_TYPES)
        model = self.repo.get(name, version)
        metrics = model.metrics
        self.metrics.in_flight.inc()
        self.repo.arriving += 1
        arriving = True
        try:
            raw_length = head.get(HEADER_LENGTH)
            header_length: int | None = None
            if raw_length is not None:
                try:
                    header_length = int(raw_length)
                except ValueError:
                    raise InvalidRequest(
                        "Inference-Header-Content-Length must be an integer"
                    ) from None
            body = await self.read(receive, head)
            if header_length == 0:
                request = self._raw(model, body, self.limits["max_elements"])
            elif len(body) > DECODE_INLINE:  # parse large bodies off the event loop
                request = await asyncio.to_thread(
                    decode_request, body, header_length, **self.limits
                )
            else:
                request = decode_request(
                    body, header_length, max_elements=self.max_elements, max_depth=self.max_depth
                )
            inputs = model.prepare(request.inputs)
            outputs = request.outputs or model.default_outputs()
            valid = model.signature.output_names()
            for out in outputs:
                if out not in valid:
                    raise TensorError(f"unknown output '{out}'; this model has: {', '.join(valid)}")
            self.repo.arriving -= 1
            arriving = False
            result = await model.predictor.predict(inputs, outputs)
            payload, header_length_out = encode_response(
                name, model.version, request, model.output_types(), result
            )
        except DockyardError as exc:
            metrics.failed(exc.status)
            raise
        except Exception:
            metrics.failed(500)
            raise
        finally:
            if arriving:
                self.repo.arriving -= 1
            self.metrics.in_flight.dec()
        metrics.ok.inc()
        metrics.total.observe(time.perf_counter() - started)
        if header_length_out is None:
            return Response(200, payload, [(b"content-type", JSON)])
        return Response(
            200,
            payload,
            [
                (b"content-type", b"application/octet-stream"),
                (HEADER_LENGTH, str(header_length_out).encode()),
            ],
        )

    @staticmethod
    def _raw(model: LoadedModel, body: bytes, max_elements: int) -> InferRequest:
        """``Inference-Header-Content-Length: 0``: the body is one input's raw bytes, a batch
        of one when the model's first dimension is variable, else its shape exactly."""
        specs = model.signature.inputs
        if len(specs) != 1:
            raise TensorError("a raw binary request needs a model with exactly one input")
        spec = specs[0]
        if spec.datatype == "BYTES":
            from dockyard.serving.codec import decode_bytes

            data = decode_bytes(memoryview(body), 1, spec.name).reshape([1])
            shape = [1]
        else:
            itemsize = DATATYPES[spec.datatype].itemsize
            count, odd = divmod(len(body), itemsize)
            if spec.shape and spec.shape[0] < 0:
                dims = [1, *spec.shape[1:]]
            else:
                dims = list(spec.shape) or [-1]
            known = 1
            for d in dims:
                known *= d if d >= 0 else 1
            free = sum(1 for d in dims if d < 0)
            if (
                odd
                or not count
                or free > 1
                or (free == 1 and (known == 0 or count % known))
                or (free == 0 and count != known)
            ):
                raise TensorError(
                    f"input '{spec.name}': {len(body)} raw bytes of {spec.datatype} do not fit "
                    f"shape {list(spec.shape)}"
                )
            if count > max_elements:
                raise PayloadTooLarge(
                    f"the request's tensors have more than {max_elements} elements, the limit "
                    "per request (max_elements)"
                )
            shape = [d if d >= 0 else count // known for d in dims]
            data = np.frombuffer(body, dtype=DATATYPES[spec.datatype]).reshape(shape)
        request = InferRequest([InferInput(spec.name, spec.datatype, shape, data)])
        request.binary_default = True
        return request

    # -- v1 -----------------------------------------------------------------------------
    async def v1(self, method: str, rest: list[str], receive: Receive, head: Head) -> Response:
        if rest == ["models"] and method == "GET":
            return json_response(200, {"models": sorted(self.repo.models)})
        if len(rest) == 2 and rest[0] == "models":
            target = rest[1]
            if method == "POST" and target.endswith(":predict"):
                if self.auth_inference:
                    self.authorize(head, "inference")
                self.check_media(head, JSON_TYPES)
                name = target[: -len(":predict")]
                self.repo.get(name)  # 404/503 before reading the body
                return await self.predict_v1(name, await self.read(receive, head))
            if method == "GET":
                try:
                    ready = self.repo.get(target).ready
                except ModelNotReadyError:
                    ready = False
                return json_response(200 if ready else 503, {"name": target, "ready": ready})
        raise NotFound(f"no route {method} /v1/{'/'.join(rest)}")

    async def predict_v1(self, name: str, body: bytes) -> Response:
        model = self.repo.get(name)
        max_elements = self.limits["max_elements"]
        request = parse_json(body, max_elements)
        rows = (
            request.get("instances", request.get("inputs")) if isinstance(request, dict) else None
        )
        if not isinstance(rows, list) or not rows:
            raise TensorError('expected {"instances": [...]} or {"inputs": [...]}')
        if nesting(rows) > self.limits["max_depth"] + 1:
            raise TensorError(
                f"instances are nested more than {self.limits['max_depth']} levels deep (max_depth)"
            )
        specs = model.signature.inputs
        inputs: dict[str, Any] = {}
        try:
            if isinstance(rows[0], dict):
                for spec in specs:
                    inputs[spec.name] = np.asarray(
                        [r[spec.name] for r in rows], dtype=DATATYPES[spec.datatype]
                    )
            else:
                if len(specs) != 1:
                    raise TensorError(
                        f"this model has inputs {[s.name for s in specs]}: send "
                        "instances as objects keyed by input name"
                    )
                dtype = DATATYPES[specs[0].datatype]
                inputs[specs[0].name] = np.asarray(rows, dtype=dtype)
        except (KeyError, ValueError, TypeError, OverflowError) as exc:
            raise TensorError(f"instances do not fit the model's inputs: {exc}") from exc
        if sum(a.size for a in inputs.values()) > max_elements:
            raise PayloadTooLarge(
                f"the request's instances have more than {max_elements} elements, the limit "
                "per request (max_elements)"
            )
        checked = model.prepare(
            [
                InferInput(n, s.datatype, list(a.shape), a)
                for (n, a), s in zip(inputs.items(), specs, strict=True)
            ]
        )
        output = model.default_outputs()[0]
        result = await model.predictor.predict(checked, [output])
        model.metrics.ok.inc()
        return json_response(200, {"predictions": result[output]})
