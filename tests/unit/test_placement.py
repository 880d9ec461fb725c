"""Placement near the data: the label scheme, STORK-like scores and the scheduler extender's
routes, answered through a FastAPI app as the kube-scheduler sends its requests."""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Mapping
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from hypothesis import given
from hypothesis import strategies as st

from dockyard.api import errors as api_errors
from dockyard.placement import labels as pl
from dockyard.placement.extender import (
    Extender,
    ExtenderArgs,
    ExtenderFilterResult,
    HostPriority,
    extender_router,
)
from dockyard.placement.labels import Need, data_label, is_label_key, needs_annotation, needs_of
from dockyard.placement.nodes import CachedNodeLabels, labels_by_name
from dockyard.placement.scores import Level, distances, extender_score

DIGITS = Need(kind="Dataset", name="digits", version="sha256:" + "3f" * 32)
CACHE = Need(kind="Volume", project="ml", name="cache")


def topo(region: str = "", zone: str = "", rack: str = "") -> dict[str, str]:
    out = {pl.REGION: region, pl.ZONE: zone, pl.RACK: rack}
    return {k: v for k, v in out.items() if v}


# a small cluster: eu-a-r1 holds digits; its rack mate, a zone mate, a region mate, far away
CLUSTER: dict[str, dict[str, str]] = {
    "holder": {**topo("eu", "eu-a", "r1"), **pl.node_labels([DIGITS])},
    "rackmate": topo("eu", "eu-a", "r1"),
    "zonemate": topo("eu", "eu-a", "r2"),
    "regionmate": topo("eu", "eu-b", "r1"),  # rack r1 of another zone: not the same rack
    "far": topo("us", "us-a", "r1"),
}


def pod(*needs: Need, name: str = "p", raw: str | None = None) -> dict[str, Any]:
    annotations = needs_annotation(needs) if raw is None else {pl.NEEDS: raw}
    meta: dict[str, Any] = {"name": name, "namespace": "ns", "uid": "u-1"}
    if annotations:
        meta["annotations"] = annotations
    return {
        "metadata": meta,
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
        "status": {"phase": "Pending"},
    }


def node_object(name: str, labels: Mapping[str, str]) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "uid": f"uid-{name}",
            "labels": dict(labels),
            "annotations": {"kwok.x-k8s.io/node": "fake"},
        },
        "spec": {},
        "status": {"capacity": {"cpu": "8"}, "conditions": [{"type": "Ready", "status": "True"}]},
    }


def cache_args(p: dict[str, Any], names: list[str]) -> dict[str, Any]:
    """ExtenderArgs as the scheduler marshals it with nodeCacheCapable: true."""
    return {"Pod": p, "Nodes": None, "NodeNames": names}


def full_args(p: dict[str, Any], nodes: Mapping[str, Mapping[str, str]]) -> dict[str, Any]:
    """… and with nodeCacheCapable: false (Go marshals an empty ObjectMeta as {})."""
    items = [node_object(n, labels) for n, labels in nodes.items()]
    return {"Pod": p, "Nodes": {"metadata": {}, "items": items}, "NodeNames": None}


class Source:
    """A node-label source that counts its calls; the same mapping until changed."""

    def __init__(self, nodes: Mapping[str, Mapping[str, str]]) -> None:
        self.nodes = nodes
        self.calls = 0

    def __call__(self) -> Mapping[str, Mapping[str, str]]:
        self.calls += 1
        return self.nodes


@pytest.fixture
def source() -> Source:
    return Source(CLUSTER)


class AppClient:
    """Requests to an ASGI app in process (httpx's ASGITransport), one event loop each."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        async def send() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
                return await c.post(path, **kwargs)

        return asyncio.run(send())


def app_with(source: Source, **limits: int) -> AppClient:
    app = FastAPI()
    api_errors.install(app)
    app.include_router(extender_router(source, **limits))
    return AppClient(app)


@pytest.fixture
def client(source: Source) -> AppClient:
    return app_with(source, max_nodes=50, max_body_bytes=200_000)


def prioritize(client: AppClient, body: dict[str, Any]) -> dict[str, int]:
    answer = client.post("/placement/prioritize", json=body)
    assert answer.status_code == 200, answer.text
    listed = answer.json()
    assert all(set(item) == {"Host", "Score"} for item in listed)
    return {item["Host"]: item["Score"] for item in listed}


def filter_(client: AppClient, body: dict[str, Any]) -> dict[str, Any]:
    answer = client.post("/placement/filter", json=body)
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    assert set(result) == {
        "Nodes",
        "NodeNames",
        "FailedNodes",
        "FailedAndUnresolvableNodes",
        "Error",
    }
    return result


# -- the label scheme ------------------------------------------------------------------------
def test_a_data_label_is_readable_exact_and_valid() -> None:
    key = DIGITS.label
    assert key.startswith("data.dockyard.dev/dataset.default.digits.sha256-3f3f")
    assert is_label_key(key) and len(key.split("/")[1]) == 63
    assert key == data_label("default", "Dataset", "digits", DIGITS.version)
    assert CACHE.label.startswith("data.dockyard.dev/volume.ml.cache-")
    # cut readable parts still differ by their digest
    assert data_label("p", "Dataset", "d", "v" * 80 + "1") != data_label(
        "p", "Dataset", "d", "v" * 80 + "2"
    )
    assert data_label("a-b", "Volume", "c") != data_label("a", "Volume", "b-c")


@given(
    project=st.from_regex(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", fullmatch=True),
    name=st.from_regex(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", fullmatch=True),
    version=st.none() | st.text(min_size=1, max_size=pl.MAX_VERSION),
    kind=st.sampled_from(["Dataset", "Volume"]),
)
def test_every_data_label_is_a_valid_kubernetes_label_key(
    project: str, name: str, version: str | None, kind: pl.DataKind
) -> None:
    assert is_label_key(data_label(project, kind, name, version))


def test_label_key_validation_follows_kubernetes() -> None:
    assert is_label_key("topology.kubernetes.io/zone") and is_label_key("type")
    assert not is_label_key("data.dockyard.dev/" + "a" * 64)
    assert not is_label_key("data.dockyard.dev/-a") and not is_label_key("Data.Dockyard/a")
    assert not is_label_key("a/") and not is_label_key("")


def test_needs_round_trip_through_the_pod_annotation() -> None:
    annotations = needs_annotation([DIGITS, CACHE.model_copy(update={"required": True})])
    assert json.loads(annotations[pl.NEEDS])[1] == {
        "kind": "Volume",
        "project": "ml",
        "name": "cache",
        "required": True,
    }
    assert needs_of(annotations) == [DIGITS, CACHE.model_copy(update={"required": True})]
    assert needs_of({}) == [] and needs_of(None) == [] and needs_annotation([]) == {}


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        ("{not json", "is not JSON"),
        ('{"kind": "Dataset"}', "value: Input should be a valid list"),
        ('[{"kind": "Model", "name": "m"}]', "0.kind"),
        ('[{"kind": "Dataset", "name": "Bad_Name"}]', "0.name"),
        ('[{"kind": "Dataset", "name": "d", "size": 1}]', "0.size: Extra inputs"),
        (json.dumps([{"kind": "Volume", "name": f"v{i}"} for i in range(33)]), "at most 32"),
    ],
)
def test_a_wrong_annotation_says_what_is_wrong(raw: str, says: str) -> None:
    with pytest.raises(pl.InvalidRequest) as caught:
        needs_of({pl.NEEDS: raw}, "pod ns/p")
    assert "pod ns/p" in caught.value.message and says in caught.value.message
    assert pl.NEEDS in (caught.value.hint or "")


# -- scores ----------------------------------------------------------------------------------
def test_stork_levels_map_to_five_distinct_extender_scores() -> None:
    assert [int(level) for level in Level] == [100, 50, 25, 10, 5]
    assert [extender_score(level) for level in Level] == [10, 5, 2, 1, 0]
    assert extender_score(0) == 0 and extender_score(1000) == 10


def test_the_score_table(client: AppClient) -> None:
    scores = prioritize(client, cache_args(pod(DIGITS), list(CLUSTER)))
    assert scores == {"holder": 10, "rackmate": 5, "zonemate": 2, "regionmate": 1, "far": 0}


def test_absent_topology_labels_count_as_equal() -> None:
    nodes = {
        "holder": {pl.ZONE: "a", **pl.node_labels([DIGITS])},
        "zone": {pl.ZONE: "a"},
        "rack-elsewhere": {pl.ZONE: "b", pl.RACK: "r"},
        "bare": {},
    }
    scores = prioritize(app_with(Source(nodes)), cache_args(pod(DIGITS), list(nodes)))
    assert scores == {"holder": 10, "zone": 2, "rack-elsewhere": 0, "bare": 0}


def test_several_needs_score_the_mean_of_their_levels(source: Source) -> None:
    source.nodes = {**CLUSTER, "rackmate": {**CLUSTER["rackmate"], **pl.node_labels([CACHE])}}
    scores = prioritize(app_with(source), cache_args(pod(DIGITS, CACHE), list(CLUSTER)))
    # holder: (100 + 50) / 2, rackmate: (50 + 100) / 2, zonemate: (25 + 25) / 2 ...
    assert scores == {"holder": 7, "rackmate": 7, "zonemate": 2, "regionmate": 1, "far": 0}


def test_a_need_nobody_holds_is_left_out(client: AppClient) -> None:
    nowhere = Need(kind="Dataset", name="nowhere", version="1")
    assert prioritize(client, cache_args(pod(DIGITS, nowhere), list(CLUSTER)))["holder"] == 10
    assert set(prioritize(client, cache_args(pod(nowhere), list(CLUSTER))).values()) == {0}


def test_ties_score_the_same_and_every_node_is_answered_once_in_order(client: AppClient) -> None:
    names = ["far", "rackmate", "holder", "zonemate", "regionmate", "unknown"]
    source_nodes = {**CLUSTER, "rackmate": {**CLUSTER["rackmate"], **pl.node_labels([DIGITS])}}
    c = app_with(Source(source_nodes))
    answer = c.post("/placement/prioritize", json=cache_args(pod(DIGITS), names)).json()
    assert [item["Host"] for item in answer] == names
    scores = {item["Host"]: item["Score"] for item in answer}
    assert scores["holder"] == scores["rackmate"] == 10  # two holders: a tie
    assert scores["unknown"] == 0  # a node the source does not know yet: no preference


def test_a_pod_without_needs_passes_everywhere_with_one_score(client: AppClient) -> None:
    names = [*CLUSTER, "unknown"]
    assert set(prioritize(client, cache_args(pod(), names)).values()) == {0}
    result = filter_(client, cache_args(pod(), names))
    assert result["NodeNames"] == names and result["Nodes"] is None
    assert result["FailedAndUnresolvableNodes"] == {} and result["Error"] == ""


def test_the_source_index_is_built_once_per_mapping(source: Source) -> None:
    extender = Extender(source)
    body = json.dumps(cache_args(pod(DIGITS), list(CLUSTER))).encode()
    first = extender.index()
    for _ in range(3):
        extender.prioritize(body)
    assert extender.index() is first and source.calls == 5
    source.nodes = dict(CLUSTER)  # a new listing: a new index
    assert extender.index() is not first
    extender.prioritize(json.dumps(cache_args(pod(), list(CLUSTER))).encode())
    assert source.calls == 6  # a pod without needs does not even ask


# -- filter ----------------------------------------------------------------------------------
def test_preferences_never_filter(client: AppClient) -> None:
    result = filter_(client, cache_args(pod(DIGITS, CACHE), list(CLUSTER)))
    assert result["NodeNames"] == list(CLUSTER)
    assert result["FailedAndUnresolvableNodes"] == {}


def test_a_required_need_keeps_only_its_holders(client: AppClient) -> None:
    required = DIGITS.model_copy(update={"required": True})
    result = filter_(client, cache_args(pod(required), list(CLUSTER)))
    assert result["NodeNames"] == ["holder"]
    failed = result["FailedAndUnresolvableNodes"]
    assert set(failed) == {"rackmate", "zonemate", "regionmate", "far"}
    assert failed["far"] == (
        f"does not hold {DIGITS.describe()}, which the pod requires (held by 1 node)"
    )
    assert result["FailedNodes"] == {}


def test_a_required_need_nobody_holds_filters_nothing(client: AppClient) -> None:
    nowhere = Need(kind="Volume", name="nowhere", required=True)
    assert filter_(client, cache_args(pod(nowhere), list(CLUSTER)))["NodeNames"] == list(CLUSTER)


def test_a_holder_outside_the_candidates_still_counts(client: AppClient) -> None:
    """The holder is full (the scheduler left it out): its rack mate is the next best, and a
    required need fails every candidate."""
    assert prioritize(client, cache_args(pod(DIGITS), ["rackmate", "far"])) == {
        "rackmate": 5,
        "far": 0,
    }
    required = DIGITS.model_copy(update={"required": True})
    result = filter_(client, cache_args(pod(required), ["rackmate", "far"]))
    assert result["NodeNames"] == [] and set(result["FailedAndUnresolvableNodes"]) == {
        "rackmate",
        "far",
    }


# -- the full-object form (nodeCacheCapable: false) ------------------------------------------
def test_node_objects_are_scored_by_their_own_labels_and_passed_back_unchanged(
    client: AppClient,
) -> None:
    sent = {**CLUSTER, "far": {**CLUSTER["far"], **pl.node_labels([DIGITS])}}
    body = full_args(pod(DIGITS), sent)
    scores = prioritize(client, body)
    assert scores == {"holder": 10, "rackmate": 5, "zonemate": 2, "regionmate": 1, "far": 10}
    result = filter_(client, copy.deepcopy(body))
    assert result["NodeNames"] is None
    assert result["Nodes"] == body["Nodes"]  # every node, each exactly as sent


def test_the_source_knows_holders_that_were_not_sent(client: AppClient) -> None:
    body = full_args(pod(DIGITS), {n: CLUSTER[n] for n in ("rackmate", "far")})
    assert prioritize(client, body) == {"rackmate": 5, "far": 0}
    # a candidate's own labels win over the source's: "holder" says it no longer holds it,
    # so nobody does and the need says nothing
    body = full_args(pod(DIGITS), {"holder": CLUSTER["rackmate"], "far": CLUSTER["far"]})
    assert prioritize(client, body) == {"holder": 0, "far": 0}


def test_a_required_need_filters_node_objects(client: AppClient) -> None:
    required = DIGITS.model_copy(update={"required": True})
    body = full_args(pod(required), CLUSTER)
    result = filter_(client, body)
    assert [n["metadata"]["name"] for n in result["Nodes"]["items"]] == ["holder"]
    assert result["Nodes"]["items"][0] == body["Nodes"]["items"][0]
    assert result["Nodes"]["metadata"] == {}


# -- the wire format -------------------------------------------------------------------------
def test_the_wire_format_uses_the_go_field_names() -> None:
    """k8s.io/kube-scheduler/extender/v1: structs without JSON tags, so Go's names."""
    sent = cache_args(pod(DIGITS), ["a", "b"])
    args = ExtenderArgs.model_validate(sent)
    assert args.node_names == ["a", "b"] and args.nodes is None
    assert args.model_dump(by_alias=True, exclude_unset=True).keys() == sent.keys()
    result = ExtenderFilterResult(node_names=["a"], failed_and_unresolvable_nodes={"b": "why"})
    assert result.model_dump(by_alias=True) == {
        "Nodes": None,
        "NodeNames": ["a"],
        "FailedNodes": None,
        "FailedAndUnresolvableNodes": {"b": "why"},
        "Error": "",
    }
    assert HostPriority(host="a", score=10).model_dump(by_alias=True) == {"Host": "a", "Score": 10}


def test_answers_are_what_the_scheduler_decodes(client: AppClient) -> None:
    answer = filter_(client, cache_args(pod(DIGITS), list(CLUSTER)))
    assert ExtenderFilterResult.model_validate(answer).node_names == list(CLUSTER)
    listed = client.post("/placement/prioritize", json=full_args(pod(DIGITS), CLUSTER)).json()
    assert [HostPriority.model_validate(item).score for item in listed] == [10, 5, 2, 1, 0]


def test_the_scheduler_s_own_encoding_is_read() -> None:
    """What kube-scheduler 1.34 posts (json.Marshal of *ExtenderArgs): null pointers, an
    empty items list as null, every field present."""
    body = {"Pod": pod(DIGITS), "Nodes": {"metadata": {}, "items": None}, "NodeNames": None}
    c = app_with(Source(CLUSTER))
    assert prioritize(c, body) == {}
    assert filter_(c, body)["Nodes"] == {"metadata": {}, "items": []}


def test_the_routes_are_documented() -> None:
    app = FastAPI()
    app.include_router(extender_router(Source({})))
    paths = app.openapi()["paths"]
    for path in ("/placement/filter", "/placement/prioritize"):
        schema = paths[path]["post"]["requestBody"]["content"]["application/json"]["schema"]
        assert schema["required"] == ["Pod"]
    answer = paths["/placement/prioritize"]["post"]["responses"]["200"]["content"]
    assert answer["application/json"]["schema"]["items"]["$ref"].endswith("/HostPriority")
    schemas = app.openapi()["components"]["schemas"]
    assert set(schemas["ExtenderFilterResult"]["properties"]) == {
        "Nodes",
        "NodeNames",
        "FailedNodes",
        "FailedAndUnresolvableNodes",
        "Error",
    }


# -- bad input -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"{not json", "the body is not JSON"),
        (b"[]", "the body must be a JSON object (ExtenderArgs)"),
        (b'{"NodeNames": ["a"]}', "Pod: a pod is needed"),
        (b'{"Pod": null, "NodeNames": ["a"]}', "Pod: a pod is needed"),
        (b'{"Pod": {}}', "needs Nodes or NodeNames"),
        (b'{"Pod": {}, "NodeNames": [1]}', "NodeNames.0: Input should be a valid string"),
        (b'{"Pod": {}, "Nodes": {"items": [{}]}}', "Nodes.items.0.metadata.name"),
        (b'{"Pod": {"metadata": {"annotations": {"a": 1}}}, "NodeNames": []}', "Pod.metadata"),
        (
            b'{"Pod": {"metadata": {"name": "p", "annotations": {"dockyard.dev/data": "x"}}},'
            b' "NodeNames": []}',
            "the annotation dockyard.dev/data of pod default/p is not JSON",
        ),
    ],
)
@pytest.mark.parametrize("verb", ["filter", "prioritize"])
def test_bad_input_is_a_400_problem(client: AppClient, verb: str, body: bytes, says: str) -> None:
    answer = client.post(
        f"/placement/{verb}", content=body, headers={"content-type": "application/json"}
    )
    assert answer.status_code == 400, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    problem = answer.json()
    assert problem["code"] == "invalid-request" and says in problem["detail"], problem
    assert "ExtenderArgs" in problem["hint"] or pl.NEEDS in problem["hint"]


def test_bad_node_labels_are_a_400(client: AppClient) -> None:
    body = full_args(pod(DIGITS), {"a": {}})
    body["Nodes"]["items"][0]["metadata"]["labels"] = {"x": 1}
    answer = client.post("/placement/prioritize", json=body)
    assert answer.status_code == 400 and "Nodes.items.0.metadata.labels" in answer.json()["detail"]


def test_limits_are_413_and_a_foreign_content_type_415(client: AppClient) -> None:
    many = cache_args(pod(DIGITS), [f"n{i}" for i in range(51)])
    answer = client.post("/placement/prioritize", json=many)
    assert answer.status_code == 413 and "51 nodes in one request, at most 50" in answer.text
    big = cache_args(pod(DIGITS), ["n" * 210_000])
    answer = client.post("/placement/filter", json=big)
    assert answer.status_code == 413 and "larger than 200,000 bytes" in answer.text
    assert "nodeCacheCapable" in answer.json()["hint"]
    answer = client.post(
        "/placement/filter",
        content=json.dumps(cache_args(pod(), [])),
        headers={"content-type": "text/plain"},
    )
    assert answer.status_code == 415 and answer.json()["code"] == "unsupported-media-type"


# -- node-label sources ----------------------------------------------------------------------
def test_cached_node_labels_list_at_most_once_per_ttl_and_keep_the_last_on_failure() -> None:
    now = [0.0]
    listed = [[node_object("a", {"x": "1"})]]
    fail = [False]

    def list_nodes() -> list[dict[str, Any]]:
        if fail[0]:
            raise OSError("the API server is away")
        return listed[0]

    nodes = CachedNodeLabels(list_nodes, ttl=2.0, clock=lambda: now[0])
    first = nodes()
    assert first == {"a": {"x": "1"}} and nodes() is first and nodes.listings == 1
    now[0] = 2.0
    listed[0] = [node_object("b", {})]
    assert nodes() == {"b": {}} and nodes.listings == 2
    now[0], fail[0] = 4.0, True
    assert nodes() == {"b": {}} and nodes.listings == 2
    nodes.invalidate()
    fail[0] = False
    assert nodes() == {"b": {}} and nodes.listings == 3


def test_labels_by_name_reads_node_objects_leniently() -> None:
    nodes = [node_object("a", {"k": "v"}), {"metadata": {"name": "b"}}, {"metadata": {}}, {}]
    assert labels_by_name(nodes) == {"a": {"k": "v"}, "b": {}}


# -- what a status says -----------------------------------------------------------------------
def test_distances_say_where_the_data_is() -> None:
    nowhere = Need(kind="Volume", name="nowhere")
    said = {d.need.name: d for d in distances([DIGITS, nowhere], "zonemate", CLUSTER)}
    assert said["digits"].level is Level.ZONE and said["digits"].nearest == ("holder",)
    assert said["digits"].message("zonemate") == (
        f"{DIGITS.describe()} is not on zonemate: the nearest copy is in the same zone (holder)"
    )
    assert said["nowhere"].level is None
    assert "is on no node yet" in said["nowhere"].message("zonemate")
    here = distances([DIGITS], "holder", CLUSTER)[0]
    assert (
        here.level is Level.NODE and here.message("holder") == f"{DIGITS.describe()} is on holder"
    )
    assert distances([DIGITS], "gone", CLUSTER)[0].level is Level.ELSEWHERE
