"""The Open Inference Protocol (v2) REST server as a lean ASGI application."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from dockyard.serving.codec import TensorError, decode, encode
from dockyard.serving.repository import ModelNotFound, Repository
from dockyard.version import __version__

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
JSON_HEADERS = [(b"content-type", b"application/json")]
SERVER = {"name": "dockyard", "version": __version__, "extensions": []}


class HTTPError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


async def _respond(send: Send, status: int, body: Any) -> None:
    payload = b"" if body is None else orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)
    await send({"type": "http.response.start", "status": status, "headers": JSON_HEADERS})
    await send({"type": "http.response.body", "body": payload})


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


class InferenceApp:
    def __init__(self, repository: Repository) -> None:
        self.repo = repository

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        try:
            status, body = await self.route(scope, receive)
        except HTTPError as exc:
            status, body = exc.status, {"error": str(exc)}
        except ModelNotFound as exc:
            status, body = 404, {"error": str(exc)}
        except TensorError as exc:
            status, body = 400, {"error": str(exc)}
        await _respond(send, status, body)

    async def route(self, scope: Scope, receive: Receive) -> tuple[int, Any]:
        method, parts = scope["method"], [p for p in scope["path"].split("/") if p]
        if not parts or parts[0] != "v2":
            raise HTTPError(404, f"no route {scope['path']}")
        rest = parts[1:]
        if not rest and method == "GET":
            return 200, SERVER
        if rest == ["health", "live"]:
            return 200, {"live": True}
        if rest == ["health", "ready"]:
            return (200 if self.repo.ready else 503), {"ready": self.repo.ready}
        if len(rest) >= 2 and rest[0] == "models":
            name, tail, version = rest[1], rest[2:], None
            if len(tail) >= 2 and tail[0] == "versions":
                version, tail = tail[1], tail[2:]
            model = self.repo.get(name, version)
            if not tail and method == "GET":
                return 200, self.metadata(model.name, model.version)
            if tail == ["ready"] and method == "GET":
                return (200 if model.ready else 503), {"name": name, "ready": model.ready}
            if tail == ["infer"] and method == "POST":
                return 200, self.infer(model.name, model.version, await _read_body(receive))
        raise HTTPError(404, f"no route {method} {scope['path']}")

    def metadata(self, name: str, version: str) -> dict[str, Any]:
        sig = self.repo.get(name, version).runtime.signature
        return {
            "name": name,
            "versions": sorted(self.repo.models[name]),
            "platform": sig.platform,
            "inputs": [t.as_dict() for t in sig.inputs],
            "outputs": [t.as_dict() for t in sig.outputs],
        }

    def infer(self, name: str, version: str, body: bytes) -> dict[str, Any]:
        try:
            request = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise HTTPError(400, f"request body is not valid JSON: {exc}") from exc
        if (
            not isinstance(request, dict)
            or not isinstance(request.get("inputs"), list)
            or not request["inputs"]
        ):
            raise HTTPError(400, "request must be a JSON object with a non-empty 'inputs' list")
        inputs = {}
        for tensor in request["inputs"]:
            if not isinstance(tensor, dict):
                raise HTTPError(400, "each input must be a JSON object")
            array = decode(tensor)
            inputs[tensor["name"]] = array
        wanted = None
        if isinstance(request.get("outputs"), list):
            wanted = [str(o.get("name")) for o in request["outputs"] if isinstance(o, dict)]
        model = self.repo.get(name, version)
        outputs = model.runtime.predict(inputs, wanted)
        response: dict[str, Any] = {
            "model_name": name,
            "model_version": version,
            "outputs": [encode(k, v) for k, v in outputs.items()],
        }
        if "id" in request:
            response["id"] = request["id"]
        if "parameters" in request:
            response["parameters"] = request["parameters"]
        for out in response["outputs"]:
            if out["datatype"].startswith("FP"):
                out["data"] = [
                    None if isinstance(x, float) and not math.isfinite(x) else x
                    for x in out["data"]
                ]
        return response
