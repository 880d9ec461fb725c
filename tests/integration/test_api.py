"""The REST API on a real server process: apply/get/list/delete, problem+json errors."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from dockyard.client import Client
from dockyard.errors import InUse, InvalidRequest, InvalidSpec, NotFound
from dockyard.spec import DESCRIPTORS
from dockyard.tokens import client_token
from tests import factories as f
from tests.conftest import ServerProcess


def post(
    client: Client, path: str, headers: dict[str, str] | None = None, **kwargs: Any
) -> httpx.Response:
    return httpx.post(
        client.url + path, timeout=10, headers={**auth(client), **(headers or {})}, **kwargs
    )


def auth(client: Client) -> dict[str, str]:
    """What the CLI and SDK send: the server's token from DOCKYARD_HOME/token."""
    return {"authorization": f"Bearer {client_token(client.settings)}"}


def get(client: Client, path: str, **kwargs: Any) -> httpx.Response:
    return httpx.get(client.url + path, timeout=10, headers=auth(client), **kwargs)


def test_openapi_describes_every_response(server: ServerProcess) -> None:
    spec = httpx.get(server.client.url + "/openapi.json", timeout=10).json()
    assert "/api/v1/apply" in spec["paths"]
    for path, operations in spec["paths"].items():
        for method, op in operations.items():
            ok = [code for code in op["responses"] if code.startswith("2")]
            assert len(ok) == 1, (method, path)
            content = op["responses"][ok[0]].get("content", {})
            assert any(m.get("schema") for m in content.values()), (method, path, content)
            problem = op["responses"]["4XX"]["content"]["application/problem+json"]["schema"]
            assert problem == {"$ref": "#/components/schemas/Problem"}
    schemas = spec["components"]["schemas"]
    for d in DESCRIPTORS:  # each kind's routes answer its own status model
        get = spec["paths"][f"/api/v1/{d.plural}/{{name}}"]["get"]
        ref = get["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
        status = schemas[ref.rsplit("/", 1)[1]]["properties"]["status"]
        assert status["$ref"].endswith(f"/{d.kind}Status")


def test_apply_get_list_idempotent(server: ServerProcess) -> None:
    c = server.client
    docs = [f.volume("data"), f.job("j", f.python("print(1)"), volumes=[{"name": "data"}])]
    assert [r["action"] for r in c.apply(docs)] == ["created", "created"]
    assert [r["action"] for r in c.apply(docs)] == ["unchanged", "unchanged"]
    docs[1]["spec"]["command"] = f.python("print(2)")
    results = c.apply(docs)
    assert [(r["action"], r["generation"]) for r in results] == [
        ("unchanged", 1),
        ("configured", 2),
    ]
    job = c.get("Job", "j")
    assert job["metadata"]["generation"] == 2
    assert job["spec"]["resources"]["cpu"] == 0.1
    assert [j["metadata"]["name"] for j in c.list("Job")] == ["j"]
    reasons = [e["reason"] for e in c.events("Job", "j")]
    assert reasons[0] == "Applied" and "Updated" in reasons


def test_malformed_body_is_problem_json(server: ServerProcess) -> None:
    for body, status, code in (
        (b"{not json", 400, "invalid-request"),  # not JSON at all
        (b'{"documents": "x"}', 422, "malformed-request"),  # JSON of the wrong shape
        (b"{}", 422, "malformed-request"),
    ):
        r = post(
            server.client,
            "/api/v1/apply",
            content=body,
            headers={"content-type": "application/json"},
        )
        assert r.status_code == status
        assert r.headers["content-type"] == "application/problem+json"
        problem = r.json()
        assert problem["code"] == code and problem["status"] == status
        assert problem["detail"].startswith(
            "malformed request" if status == 422 else "the body is not valid JSON"
        )


def test_invalid_document_names_the_field(server: ServerProcess) -> None:
    bad = f.job("j", ["x"], resources={"gpu": "two"})
    r = post(server.client, "/api/v1/apply", json={"documents": [f.volume("v"), bad]})
    assert r.status_code == 422
    problem = r.json()
    assert problem["code"] == "invalid-spec"
    assert problem["details"]["errors"] == [
        {
            "source": "document 2",
            "line": 1,
            "path": "spec.resources.gpu",
            "message": "expected an integer ≥ 0, got 'two'",
        }
    ]
    assert server.client.list("Volume") == []  # all or nothing


def test_unknown_kind(server: ServerProcess) -> None:
    with pytest.raises(InvalidSpec, match=r"unknown kind 'Jobb'.*did you mean 'Job'"):
        server.client.apply([f.doc("Jobb", "x", {})])
    r = get(server.client, "/api/v1/jbos")
    assert r.status_code == 404 and "did you mean 'jobs'" in r.json()["hint"]
    r = get(server.client, "/api/v1/apply")  # only POST
    assert r.status_code == 405 and r.headers["allow"] == "POST"
    r = httpx.put(server.client.url + "/api/v1/jobs/x", headers=auth(server.client))
    assert r.status_code == 405 and r.headers["allow"] == "DELETE, GET"


def test_missing_references_change_nothing(server: ServerProcess) -> None:
    c = server.client
    job = f.job(
        "j", ["python"], environment="nope", volumes=[{"name": "vol"}], datasets=[{"name": "ds"}]
    )
    with pytest.raises(InvalidSpec) as info:
        c.apply([job, f.service("s", "ghost")])
    messages = {e["path"]: e["message"] for e in info.value.details["errors"]}
    assert "environment 'nope' not found" in messages["spec.environment"]
    assert "volume 'vol' not found" in messages["spec.volumes[0].name"]
    assert "dataset 'ds' not found" in messages["spec.datasets[0].name"]
    assert "model 'ghost' not found" in messages["spec.model"]
    assert c.list("Job") == [] and c.list("Service") == []
    # the same references resolve inside one apply
    c.apply(
        [
            job,
            f.environment("nope"),
            f.volume("vol"),
            f.dataset("ds", "vol", source="file:///etc/hostname"),
        ]
    )
    assert c.get("Job", "j")["metadata"]["generation"] == 1


def test_service_may_name_a_model_a_job_will_produce(server: ServerProcess) -> None:
    producer = f.job("train", ["python"], outputs={"model": {"name": "m", "path": "m.pkl"}})
    server.client.apply([producer, f.service("s", "m@latest")])
    assert server.client.get("Service", "s")["spec"]["model"] == "m@latest"


def test_duplicate_names_in_one_request(server: ServerProcess) -> None:
    with pytest.raises(InvalidSpec, match="duplicate Volume 'v'"):
        server.client.apply([f.volume("v"), f.volume("v")])


def test_unknown_code_snapshot(server: ServerProcess) -> None:
    with pytest.raises(InvalidSpec, match="was not uploaded"):
        server.client.apply([f.job("j", ["python"], code="sha256:" + "0" * 64)])
    gzip = {"content-type": "application/gzip"}
    r = post(server.client, "/api/v1/code", content=b"not a tarball", headers=gzip)
    assert r.status_code == 400 and r.json()["code"] == "invalid-request"


def test_not_found(server: ServerProcess) -> None:
    with pytest.raises(NotFound, match="Job 'nope' not found"):
        server.client.get("Job", "nope")
    with pytest.raises(InvalidRequest):
        server.client.request("GET", "/api/v1/jobs/x/logs", params={"attempt": "x"})


def test_delete_volume_in_use_and_with_data(server: ServerProcess) -> None:
    c = server.client
    c.apply(
        [
            f.volume("v"),
            f.job("j", f.python("import time; time.sleep(30)"), volumes=[{"name": "v"}]),
        ]
    )
    with pytest.raises(InUse, match="in use by job 'j'"):
        c.delete("Volume", "v")
    c.delete("Job", "j")
    from tests.conftest import wait_until

    def gone() -> bool:
        try:
            c.get("Job", "j")
        except NotFound:
            return True
        return False

    wait_until(gone, message="job deleted")
    volume_dir = server.home / "volumes" / "default" / "v"
    (volume_dir / "precious.txt").write_text("keep me")
    with pytest.raises(Exception, match="holds 1 file"):
        c.delete("Volume", "v")
    c.delete("Volume", "v", keep_data=True)
    wait_until(lambda: not c.list("Volume"), message="volume deleted")
    assert (volume_dir / "precious.txt").read_text() == "keep me"


def test_health_and_node(server: ServerProcess) -> None:
    health = server.client.health()
    assert health["status"] == "ok" and health["runtime"] == "local"
    node = server.client.node()
    assert node["capacity"]["cpu"] >= 1 and node["capacity"]["memory"] > 0


def test_odd_inputs_are_client_errors(server: ServerProcess) -> None:
    c = server.client
    r = post(
        c,
        "/api/v1/apply",
        json={"documents": [{"apiVersion": "dockyard.dev/v1", "kind": ["Job"]}]},
    )
    assert r.status_code == 422 and r.json()["code"] == "invalid-spec"
    assert get(c, "/api/v1/events?limit=1e20").status_code == 422
    r = get(c, "/api/v1/jobs?selector=team")
    assert r.status_code == 400 and "bad selector" in r.json()["detail"]


def test_dataset_directories_may_not_overlap(server: ServerProcess) -> None:
    c = server.client
    src = "file:///etc/hostname"
    with pytest.raises(InvalidSpec, match="expected a relative path inside the volume"):
        c.apply([f.volume("v"), f.dataset("d", "v", source=src, path=".")])
    with pytest.raises(InvalidSpec, match="where jobs keep checkpoints"):
        c.apply([f.volume("v"), f.dataset("checkpoints", "v", source=src)])
    c.apply([f.volume("v"), f.dataset("a", "v", source=src, path="data/a")])
    with pytest.raises(InvalidSpec, match="overlaps dataset 'a'"):
        c.apply([f.dataset("b", "v", source=src, path="data")])
    with pytest.raises(InvalidSpec, match="expected a relative path inside the volume"):
        c.apply([f.job("j", ["true"], volumes=[{"name": "v", "subPath": "../../etc"}])])


def test_concurrent_applies_never_fail_with_500(server: ServerProcess) -> None:
    import threading

    results: list[int] = []

    def one(i: int) -> None:
        doc = f.job("race", f.python(f"print({i})"))
        r = post(server.client, "/api/v1/apply", json={"documents": [doc]})
        results.append(r.status_code)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert set(results) <= {200, 409} and results.count(200) >= 1
    job = server.client.get("Job", "race")
    assert job["metadata"]["generation"] == results.count(200)  # no generation was lost


def test_the_loop_rests_while_a_job_cannot_be_scheduled(server: ServerProcess) -> None:
    import time

    c = server.client
    c.apply([f.job("huge", f.python("pass"), resources={"cpu": 1024})])
    from tests.conftest import wait_until

    wait_until(lambda: c.get("Job", "huge")["status"].get("reason") == "Unschedulable")
    before = c.health()["controller"]["passes"]
    time.sleep(2)
    passes = c.health()["controller"]["passes"] - before
    assert passes < 40, f"{passes} passes in 2 s: the control loop is spinning"
    events = [e["reason"] for e in c.events("Job", "huge")]
    assert events.count("Unschedulable") == 1
