"""The kube-scheduler extender: ``POST {prefix}/filter`` and ``POST {prefix}/prioritize``.

The wire format is the scheduler's, k8s.io/kube-scheduler/extender/v1 (types.go): Go structs
without JSON tags, so the field names are the Go names — ``ExtenderArgs {Pod, Nodes,
NodeNames}``, ``ExtenderFilterResult {Nodes, NodeNames, FailedNodes,
FailedAndUnresolvableNodes, Error}``, ``HostPriorityList [{Host, Score}]`` with ``Score`` in
0..``MaxExtenderPriority`` (10). With ``nodeCacheCapable: true`` the scheduler sends only
``NodeNames`` and the labels come from the router's node-label source; otherwise it sends
the Node objects in ``Nodes.items`` (and expects those that pass back in ``Nodes``).

Placement is a preference: ``/filter`` lets every node pass unless a need is ``required``
and some node holds it; ``/prioritize`` scores by distance to the data (``scores``). A pod
without the ``dockyard.dev/data`` annotation passes everywhere and scores 0 everywhere.

A body that is not an ``ExtenderArgs`` is answered 400 (problem+json, by the app's error
handlers), one larger than ``max_body_bytes`` or with more than ``max_nodes`` nodes 413;
the scheduler logs the answer (and, its extender being ``ignorable``, schedules without it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from starlette.concurrency import run_in_threadpool
from typing_extensions import TypedDict

from dockyard import errors as e
from dockyard.placement.labels import DATA_PREFIX, HOLDS, Need, needs_of
from dockyard.placement.nodes import NodeLabels, NodeLabelSource
from dockyard.placement.scores import (
    MAX_EXTENDER_PRIORITY,
    Holders,
    Place,
    place_of,
    refusals,
    scores,
)

MAX_NODES = 10_000
"""Nodes one request may name (Kubernetes is tested up to 5,000 nodes per cluster)."""
MAX_BODY_BYTES = 64 * 1024 * 1024
"""Largest request body read: 5,000 Node objects of a real cluster (their ``status.images``
included) fit; with ``nodeCacheCapable: true`` a request is a pod and the node names."""
PREFIX = "/placement"
_DATA = DATA_PREFIX + "/"


# -- the wire format (k8s.io/kube-scheduler/extender/v1) -------------------------------------
class Wire(BaseModel):
    """The Go field names as JSON keys (``Pod``), Python names in code (``pod``)."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")


class ObjectMeta(BaseModel):
    """What the extender reads of an object's metadata (the rest is kept, unread)."""

    model_config = ConfigDict(extra="allow")

    name: str = ""
    namespace: str = ""
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None


class PodObject(BaseModel):
    """A core/v1 Pod; the extender reads its metadata."""

    model_config = ConfigDict(extra="allow")

    metadata: ObjectMeta = Field(default_factory=ObjectMeta)


class NodeList(BaseModel):
    """A core/v1 NodeList; its items are core/v1 Node objects, passed back unchanged."""

    model_config = ConfigDict(extra="allow")

    items: list[dict[str, Any]] | None = None


class ExtenderArgs(Wire):
    pod: PodObject | None = Field(alias="Pod", description="The pod being scheduled.")
    nodes: NodeList | None = Field(
        default=None, alias="Nodes", description="Candidate nodes (nodeCacheCapable false)."
    )
    node_names: list[str] | None = Field(
        default=None, alias="NodeNames", description="Candidate names (nodeCacheCapable true)."
    )


class ExtenderFilterResult(Wire):
    nodes: NodeList | None = Field(default=None, alias="Nodes")
    node_names: list[str] | None = Field(default=None, alias="NodeNames")
    failed_nodes: dict[str, str] | None = Field(default=None, alias="FailedNodes")
    failed_and_unresolvable_nodes: dict[str, str] | None = Field(
        default=None, alias="FailedAndUnresolvableNodes"
    )
    error: str = Field(default="", alias="Error")


class HostPriority(Wire):
    host: str = Field(alias="Host")
    score: int = Field(alias="Score", ge=0, le=MAX_EXTENDER_PRIORITY)


HostPriorityList = list[HostPriority]

# the request body as OpenAPI shows it (the routes parse it themselves: 400, never 422)
_ARGS_SCHEMA: dict[str, Any] = {
    "title": "ExtenderArgs",
    "type": "object",
    "required": ["Pod"],
    "properties": {
        "Pod": {"type": "object", "description": "The pod being scheduled (core/v1 Pod)."},
        "Nodes": {
            "anyOf": [
                {
                    "type": "object",
                    "properties": {"items": {"type": "array", "items": {"type": "object"}}},
                },
                {"type": "null"},
            ],
            "description": "Candidate nodes (core/v1 NodeList), when nodeCacheCapable is false.",
        },
        "NodeNames": {
            "anyOf": [{"type": "array", "items": {"type": "string"}}, {"type": "null"}],
            "description": "Candidate node names, when nodeCacheCapable is true.",
        },
    },
}
_OPENAPI = {
    "requestBody": {"required": True, "content": {"application/json": {"schema": _ARGS_SCHEMA}}}
}


# what the extender reads of a request: pydantic-core parses the JSON and builds Python objects
# only for these fields (not for the rest of 5,000 Node objects)
class _Meta(TypedDict, total=False):
    name: str
    namespace: str
    labels: dict[str, str] | None
    annotations: dict[str, str] | None


class _Object(TypedDict, total=False):
    metadata: _Meta | None


class _NodeList(TypedDict, total=False):
    items: list[_Object] | None


class _Args(TypedDict, total=False):
    Pod: _Object | None
    Nodes: _NodeList | None
    NodeNames: list[str] | None


_READ: TypeAdapter[_Args] = TypeAdapter(_Args)


# -- one request ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Candidates:
    """The candidate nodes of one request: where each is, and who holds each need."""

    needs: list[Need]
    names: list[str]
    places: list[Place]  # [] when there are no needs
    held: dict[str, Holders]
    objects: bool  # the scheduler sent Node objects (nodeCacheCapable false)


class _Index:
    """Who holds what and where every node is, built once per mapping of the source."""

    def __init__(self, labels: NodeLabels) -> None:
        self.labels = labels
        self.places: dict[str, Place] = {}
        self.holders: dict[str, Holders] = {}
        for name, node_labels in labels.items():
            place = self.places[name] = place_of(name, node_labels)
            for key, value in node_labels.items():
                if value == HOLDS and key.startswith(_DATA):
                    found = self.holders.get(key)
                    if found is None:
                        found = self.holders[key] = Holders()
                    found.add(place)


class Extender:
    """The computations behind the routes (synchronous, run in the thread pool)."""

    def __init__(self, nodes: NodeLabelSource, max_nodes: int = MAX_NODES) -> None:
        self.nodes = nodes
        self.max_nodes = max_nodes
        self._index: _Index | None = None

    def index(self) -> _Index:
        labels = self.nodes()
        index = self._index
        if index is None or index.labels is not labels:
            index = self._index = _Index(labels)
        return index

    def candidates(self, body: bytes) -> Candidates:
        args = _parse(body)
        pod = args.get("Pod")
        if pod is None:
            raise e.InvalidRequest("Pod: a pod is needed", hint=_HINT)
        meta = pod.get("metadata") or {}
        name = f"pod {meta.get('namespace') or 'default'}/{meta.get('name') or '?'}"
        needs = needs_of(meta.get("annotations"), name)
        names = args.get("NodeNames")
        nodes = args.get("Nodes")
        items: list[_Object] | None = None
        if names is None:
            if nodes is None:
                raise e.InvalidRequest("ExtenderArgs needs Nodes or NodeNames", hint=_HINT)
            items = nodes.get("items") or []
            names = [_node_name(i, node) for i, node in enumerate(items)]
        if len(names) > self.max_nodes:
            raise e.PayloadTooLarge(
                f"{len(names):,} nodes in one request, at most {self.max_nodes:,}",
                hint="fewer nodes per pod (the scheduler's percentageOfNodesToScore)",
            )
        if not needs:
            return Candidates(needs, names, [], {}, items is not None)
        index = self.index()
        if items is None:
            places = [index.places.get(n) or Place(n) for n in names]
            held = {n.label: index.holders.get(n.label) or Holders() for n in needs}
        else:
            own = [(node.get("metadata") or {}).get("labels") or {} for node in items]
            places = [place_of(n, labels) for n, labels in zip(names, own, strict=True)]
            held = _held(needs, index, places, own)
        return Candidates(needs, names, places, held, items is not None)

    def filter(self, body: bytes) -> dict[str, Any]:
        c = self.candidates(body)
        failed = refusals(c.needs, c.places, c.held)
        passed = [i for i, name in enumerate(c.names) if name not in failed] if failed else []
        result: dict[str, Any] = {
            "Nodes": None,
            "NodeNames": None,
            "FailedNodes": {},
            # preemption cannot bring the data to a node: unresolvable
            "FailedAndUnresolvableNodes": failed,
            "Error": "",
        }
        if not c.objects:
            result["NodeNames"] = c.names if not failed else [c.names[i] for i in passed]
        else:  # the objects that pass go back as they came: read them whole, once more
            sent = orjson.loads(body)["Nodes"]
            items = sent.get("items") or []
            sent["items"] = items if not failed else [items[i] for i in passed]
            result["Nodes"] = sent
        return result

    def prioritize(self, body: bytes) -> list[dict[str, Any]]:
        c = self.candidates(body)
        if not c.needs:
            return [{"Host": name, "Score": 0} for name in c.names]
        given = scores(c.needs, c.places, c.held)
        return [{"Host": host, "Score": score} for host, score in given.items()]


_HINT = "send the kube-scheduler's ExtenderArgs: {Pod, Nodes | NodeNames} (docs/placement.md)"


def _parse(body: bytes) -> _Args:
    try:
        return _READ.validate_json(body)
    except ValidationError as exc:
        errors = exc.errors()
        if errors and errors[0]["type"] == "json_invalid":
            raise e.InvalidRequest(f"the body is not JSON: {errors[0]['msg']}", hint=_HINT) from exc
        if errors and not errors[0]["loc"]:
            raise e.InvalidRequest(
                "the body must be a JSON object (ExtenderArgs)", hint=_HINT
            ) from exc
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in errors[:5]
        )
        raise e.InvalidRequest(f"the body is not an ExtenderArgs: {problems}", hint=_HINT) from exc


def _node_name(i: int, node: _Object) -> str:
    name = (node.get("metadata") or {}).get("name")
    if not name:
        raise e.InvalidRequest(f"Nodes.items.{i}.metadata.name: a node name is needed", hint=_HINT)
    return name


def _held(
    needs: Sequence[Need], index: _Index, places: Sequence[Place], own: Sequence[Mapping[str, str]]
) -> dict[str, Holders]:
    """Holders of each need: the candidates by the labels sent with them, the other nodes by
    the source's."""
    sent = {p.node for p in places}
    held: dict[str, Holders] = {}
    for need in needs:
        label = need.label
        found = held[label] = Holders()
        known = index.holders.get(label)
        if known is not None:
            for node in known.nodes - sent:
                found.add(index.places[node])
        for place, labels in zip(places, own, strict=True):
            if labels.get(label) == HOLDS:
                found.add(place)
    return held


async def _body(request: Request, limit: int) -> bytes:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/json":
        raise e.UnsupportedMediaType(
            f"the extender reads application/json, not '{kind[:100] or 'none'}'", hint=_HINT
        )
    too_large = e.PayloadTooLarge(
        f"the request body is larger than {limit:,} bytes",
        hint="configure the extender with nodeCacheCapable: true (node names, not objects)",
    )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


def _json(data: Any) -> Response:
    return Response(orjson.dumps(data), media_type="application/json")


def extender_router(
    nodes: NodeLabelSource,
    *,
    prefix: str = PREFIX,
    max_nodes: int = MAX_NODES,
    max_body_bytes: int = MAX_BODY_BYTES,
) -> APIRouter:
    """The extender's routes under ``prefix``; ``nodes()`` answers {node name: labels} of the
    cluster's nodes (see ``dockyard.placement.nodes``). Errors are raised as
    ``dockyard.errors`` classes: mount the router in an app with their handlers."""
    extender = Extender(nodes, max_nodes)
    router = APIRouter(prefix=prefix, tags=["placement"])

    @router.post(
        "/filter",
        response_model=ExtenderFilterResult,
        openapi_extra=_OPENAPI,
        summary="Scheduler extender: filter the candidate nodes of a pod",
    )
    async def filter_nodes(request: Request) -> Response:
        """Every node passes, but those that lack a ``required`` need some node holds."""
        body = await _body(request, max_body_bytes)
        return _json(await run_in_threadpool(extender.filter, body))

    @router.post(
        "/prioritize",
        response_model=HostPriorityList,
        openapi_extra=_OPENAPI,
        summary="Scheduler extender: score the candidate nodes of a pod (0..10)",
    )
    async def prioritize_nodes(request: Request) -> Response:
        """Each node's closeness to the data the pod needs: 10 holds it … 0 elsewhere."""
        body = await _body(request, max_body_bytes)
        return _json(await run_in_threadpool(extender.prioritize, body))

    return router
