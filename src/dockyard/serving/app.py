"""The Open Inference Protocol (REST v2, and KServe v1) as a lean ASGI application.

Routing is a split of the path, requests are parsed with orjson straight into NumPy, and
the per-model objects (predictor, metrics) are resolved once per request by dictionary
lookups. Errors are ``DockyardError`` subclasses, answered as ``{"error": "..."}`` with the
status their class declares.
"""

from __future__ import annotations

import gzip
import logging
import time
import zlib
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
import orjson

from dockyard.errors import DockyardError, InvalidRequest, NotFound, UnsupportedMediaType
from dockyard.serving.codec import (
    DATATYPES,
    InferInput,
    InferRequest,
    TensorError,
    decode_request,
    encode_response,
)
from dockyard.serving.repository import LoadedModel, ModelNotReadyError, Repository
from dockyard.version import __version__

log = logging.getLogger("dockyard.serving")
Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
Handler = Callable[[Scope, Receive, list[str]], Awaitable["Response"]]
EXTENSIONS = ["binary_tensor_data", "model_repository", "kserve_v1"]
HEADER_LENGTH = b"inference-header-content-length"


class Response:
    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
        self.status, self.body, self.headers = status, body, headers


JSON = b"application/json"


def json_response(status: int, data: Any) -> Response:
    return Response(
        status, orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY), [(b"content-type", JSON)]
    )


async def read_body(receive: Receive) -> bytes:
    message = await receive()
    body = message.get("body", b"")
    if not message.get("more_body"):
        return body  # type: ignore[no-any-return]
    chunks = [body]
    while message.get("more_body"):
        message = await receive()
        chunks.append(message.get("body", b""))
    return b"".join(chunks)


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return value  # type: ignore[no-any-return]
    return None


def _decompress(body: bytes, encoding: bytes) -> bytes:
    """Request bodies that clients compressed (tritonclient's request_compression_algorithm)."""
    try:
        if encoding == b"gzip":
            return gzip.decompress(body)
        if encoding == b"deflate":
            return zlib.decompress(body)
    except (OSError, zlib.error) as exc:
        raise InvalidRequest(f"the body is not valid {encoding.decode()} data: {exc}") from exc
    if encoding == b"identity":
        return body
    raise UnsupportedMediaType(
        f"unsupported Content-Encoding {encoding.decode()!r}; use gzip or deflate"
    )


class InferenceApp:
    def __init__(
        self, repository: Repository, on_startup: Callable[[], Awaitable[None]] | None = None
    ) -> None:
        self.repo = repository
        self.metrics = repository.metrics
        self.on_startup = on_startup

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        try:
            response = await self.route(scope, receive)
        except DockyardError as exc:
            response = json_response(exc.status, {"error": str(exc)})
        except Exception as exc:
            log.exception("request failed")
            response = json_response(500, {"error": f"{type(exc).__name__}: {exc}"})
        headers = [*response.headers, (b"content-length", str(len(response.body)).encode())]
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

    async def route(self, scope: Scope, receive: Receive) -> Response:
        method = scope["method"]
        parts = scope["path"].strip("/").split("/")
        head = parts[0]
        if head == "v2":
            return await self.v2(method, parts[1:], scope, receive)
        if head == "v1":
            return await self.v1(method, parts[1:], receive)
        if head == "metrics" and method == "GET":
            return Response(
                200, self.metrics.render(), [(b"content-type", b"text/plain; version=0.0.4")]
            )
        raise NotFound(f"no route {method} {scope['path']}")

    # -- v2 -----------------------------------------------------------------------------
    async def v2(self, method: str, rest: list[str], scope: Scope, receive: Receive) -> Response:
        if rest and rest[0] == "models" and len(rest) >= 2:
            name, tail, version = rest[1], rest[2:], None
            if len(tail) >= 2 and tail[0] == "versions":
                version, tail = tail[1], tail[2:]
            if tail == ["infer"] and method == "POST":
                return await self.infer(scope, receive, name, version)
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
            return await self.repository(rest[1:])
        raise NotFound(f"no route {method} /v2/{'/'.join(rest)}")

    async def repository(self, rest: list[str]) -> Response:
        if rest == ["index"]:
            return json_response(200, self.repo.index())
        if len(rest) == 3 and rest[0] == "models" and rest[2] in ("load", "unload"):
            if rest[2] == "load":
                await self.repo.load(rest[1])
            else:
                await self.repo.unload(rest[1])
            return json_response(200, {})
        raise NotFound(f"no route POST /v2/repository/{'/'.join(rest)}")

    async def infer(
        self, scope: Scope, receive: Receive, name: str, version: str | None
    ) -> Response:
        started = time.perf_counter()
        model = self.repo.get(name, version)
        metrics = model.metrics
        self.metrics.in_flight.inc()
        self.repo.arriving += 1
        arriving = True
        try:
            raw_length = _header(scope, HEADER_LENGTH)
            body = await read_body(receive)
            encoding = _header(scope, b"content-encoding")
            if encoding is not None:
                body = _decompress(body, encoding)
            if raw_length is not None:
                try:
                    header_length = int(raw_length)
                except ValueError:
                    raise InvalidRequest(
                        "Inference-Header-Content-Length must be an integer"
                    ) from None
                request = (
                    self._raw(model, body)
                    if header_length == 0
                    else decode_request(body, header_length)
                )
            else:
                request = decode_request(body, None)
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
    def _raw(model: LoadedModel, body: bytes) -> InferRequest:
        """``Inference-Header-Content-Length: 0``: the body is one input's raw bytes."""
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
            dims = [1, *spec.shape[1:]] if spec.shape else [len(body) // itemsize]
            known = int(np.prod([d for d in dims if d >= 0]))
            if sum(1 for d in dims if d < 0) > 1 or len(body) % (known * itemsize):
                raise TensorError(
                    f"input '{spec.name}': {len(body)} raw bytes do not fit "
                    f"shape {list(spec.shape)}"
                )
            shape = [d if d >= 0 else len(body) // (known * itemsize) for d in dims]
            data = np.frombuffer(body, dtype=DATATYPES[spec.datatype]).reshape(shape)
        request = InferRequest([InferInput(spec.name, spec.datatype, shape, data)])
        request.binary_default = True
        return request

    # -- v1 -----------------------------------------------------------------------------
    async def v1(self, method: str, rest: list[str], receive: Receive) -> Response:
        if rest == ["models"] and method == "GET":
            return json_response(200, {"models": sorted(self.repo.models)})
        if len(rest) == 2 and rest[0] == "models":
            target = rest[1]
            if method == "POST" and target.endswith(":predict"):
                return await self.predict_v1(target[: -len(":predict")], await read_body(receive))
            if method == "GET":
                try:
                    ready = self.repo.get(target).ready
                except ModelNotReadyError:
                    ready = False
                return json_response(200 if ready else 503, {"name": target, "ready": ready})
        raise NotFound(f"no route {method} /v1/{'/'.join(rest)}")

    async def predict_v1(self, name: str, body: bytes) -> Response:
        model = self.repo.get(name)
        try:
            request = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise TensorError(f"request body is not valid JSON: {exc}") from exc
        rows = (
            request.get("instances", request.get("inputs")) if isinstance(request, dict) else None
        )
        if not isinstance(rows, list) or not rows:
            raise TensorError('expected {"instances": [...]} or {"inputs": [...]}')
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
        except (KeyError, ValueError, TypeError) as exc:
            raise TensorError(f"instances do not fit the model's inputs: {exc}") from exc
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
