"""Dataset versions through a real control plane: a new version per new content, a job that
pins an older one, the diff between two, and the volume:// and s3:// sources."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from tests.conftest import S3Server, ServerProcess
from tests.factories import dataset, job, python, volume

READ = (
    "import os, pathlib; d = pathlib.Path(os.environ['DOCKYARD_DATA_ROWS']); "
    "print('READ', sorted((p.name, p.read_text()) for p in d.iterdir()))"
)


def _source(files: dict[str, str]) -> Path:
    root = Path(tempfile.mkdtemp(prefix="dockyard-ds-"))  # under DOCKYARD_FILE_SOURCES
    for name, text in files.items():
        (root / name).write_text(text)
    return root


def test_versions_pins_and_diff(server: ServerProcess) -> None:
    client = server.client
    first = _source({"a.csv": "1,2\n", "b.csv": "3,4\n"})
    client.apply([volume("data"), dataset("rows", source=f"file://{first}")])
    v1 = client.wait("Dataset", "rows")["status"]
    assert v1["version"] == 1 and v1["versions"][0]["sha256"] == v1["sha256"]
    second = _source({"a.csv": "1,2\n", "b.csv": "3,4,5\n", "c.csv": "6\n"})
    client.apply([dataset("rows", source=f"file://{second}")])
    client.wait("Dataset", "rows", until={"Ready"})
    v2 = client.wait("Dataset", "rows")["status"]
    assert v2["version"] == 2 and [v["version"] for v in v2["versions"]] == [1, 2]

    client.apply(
        [
            job("old", python(READ), datasets=[{"name": "rows@v1"}]),
            job("new", python(READ), datasets=[{"name": "rows"}]),
        ]
    )
    assert client.wait("Job", "old")["status"]["phase"] == "Succeeded"
    assert client.wait("Job", "new")["status"]["phase"] == "Succeeded"
    old_log = "".join(c.decode() for c in client.logs("Job", "old"))
    new_log = "".join(c.decode() for c in client.logs("Job", "new"))
    assert "('b.csv', '3,4\\n')" in old_log and "c.csv" not in old_log
    assert "('b.csv', '3,4,5\\n')" in new_log and "c.csv" in new_log

    diff = client.dataset_diff("rows@v1", "rows@v2")
    assert [c["path"] for c in diff["added"]] == ["c.csv"]
    assert [c["path"] for c in diff["changed"]] == ["b.csv"]
    assert diff["counts"] == {"added": 1, "removed": 0, "changed": 1, "unchanged": 1}

    client.apply([job("missing", python(READ), datasets=[{"name": "rows@v7"}])])
    status: dict[str, Any] = {}
    for _ in range(100):
        status = client.get("Job", "missing")["status"]
        if "no version 7" in status.get("message", ""):
            break
        import time

        time.sleep(0.1)
    assert "no version 7 (its versions: v1, v2)" in status["message"]


def test_a_volume_source_and_an_s3_source(server_factory: Any, s3_server: S3Server) -> None:
    srv: ServerProcess = server_factory(**s3_server.env)
    client = srv.start()
    bucket = s3_server.bucket()
    s3: Any = s3_server.client()
    s3.put_object(Bucket=bucket, Key="raw/2026/part-1.csv", Body=b"x,y\n1,2\n")
    s3.put_object(Bucket=bucket, Key="raw/2026/sub/part-2.csv", Body=b"x,y\n3,4\n")
    client.apply([volume("raw"), volume("data")])
    client.wait("Volume", "raw")
    raw = Path(client.get("Volume", "raw")["status"]["path"])
    (raw / "exports").mkdir()
    (raw / "exports" / "table.csv").write_text("k,v\n")
    client.apply(
        [
            dataset("from-volume", volume="data", source="volume://raw/exports"),
            dataset("from-s3", volume="data", source=f"s3://{bucket}/raw/2026"),
        ]
    )
    local = client.wait("Dataset", "from-volume")["status"]
    assert local["phase"] == "Ready" and local["files"] == 1
    assert (Path(local["path"]) / "table.csv").read_text() == "k,v\n"
    remote = client.wait("Dataset", "from-s3")["status"]
    assert remote["phase"] == "Ready" and remote["files"] == 2, remote
    assert (Path(remote["path"]) / "sub" / "part-2.csv").read_bytes() == b"x,y\n3,4\n"
