"""A spec stored by an older version may break a rule added since: that resource alone says
so, and the server, other applies and other resources go on."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import httpx

from tests import factories as f
from tests.conftest import ServerProcess, wait_until


def test_a_stored_spec_that_no_longer_validates_is_isolated(
    server_factory: Any, tmp_path: Path
) -> None:
    source = tmp_path / "d.csv"
    source.write_text("a,b\n1,2\n")
    first: ServerProcess = server_factory()
    c = first.start()
    c.apply(
        [
            f.volume("data"),
            f.dataset("old", path="old", source=source.as_uri()),
            f.job("old-job", f.python("pass"), volumes=[{"name": "data"}]),
        ]
    )
    c.wait("Job", "old-job", timeout=60)
    first.stop()
    with sqlite3.connect(first.home / "dockyard.db") as db:  # as an older version wrote them
        for name in ("old", "old-job"):
            (spec,) = db.execute("SELECT spec FROM resources WHERE name = ?", (name,)).fetchone()
            broken = {**json.loads(spec), "volume": "Not A Name!", "command": []}
            broken = {k: v for k, v in broken.items() if k in json.loads(spec)}
            db.execute(
                "UPDATE resources SET spec = ?, generation = generation + 1 WHERE name = ?",
                (json.dumps(broken), name),
            )
        db.execute('DELETE FROM "references"')  # an older store had no index: it is rebuilt
    again: ServerProcess = server_factory(home=first.home)
    c = again.start()  # starts, although two stored specs are invalid
    c.apply(
        [
            f.dataset("fresh", path="fresh", source=source.as_uri()),
            f.job("new", f.python("print('ok')")),
        ]
    )
    assert c.wait("Job", "new", timeout=60)["status"]["phase"] == "Succeeded"
    for kind, name, field in (("Dataset", "old", "volume"), ("Job", "old-job", "command")):
        status = c.wait(kind, name, until={"Failed"}, timeout=60)["status"]
        assert status["reason"] == "ReconcileError", status
        assert f"the stored spec of {kind.lower()} '{name}' is no longer valid" in status["message"]
        assert f"spec.{field}" in status["message"] and "apply it again" in status["message"]
    with httpx.Client(base_url=c.url, headers=again.auth) as http:  # never a 5xx
        assert http.get("/api/v1/jobs/old-job").status_code == 200
        assert http.get("/api/v1/jobs").status_code == 200
    c.delete("Job", "old-job")  # deleting it works although its spec does not validate
    wait_until(lambda: all(j["metadata"]["name"] != "old-job" for j in c.list("Job")), 60)
    c.apply([f.job("old-job", f.python("pass"))])  # applied again, it validates and runs
    assert c.wait("Job", "old-job", timeout=60)["status"]["phase"] == "Succeeded"
