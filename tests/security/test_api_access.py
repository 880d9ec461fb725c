"""Who may talk to the control plane: a token, the server's own Host, no other web site, JSON."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from dockyard.data.code import MAX_CODE_BYTES
from dockyard.tokens import rotate
from tests import factories as f
from tests.conftest import ServerProcess
from tests.security.helpers import dockyard


@pytest.fixture
def api(server: ServerProcess) -> tuple[str, str]:
    """The server's URL and its token (what the CLI reads from DOCKYARD_HOME/token)."""
    server.client.apply([f.job("victim", f.python("import time; time.sleep(60)"))])
    return server.client.url, (server.home / "token").read_text().strip()


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def test_the_token_file_is_private(server: ServerProcess) -> None:
    assert (server.home / "token").stat().st_mode & 0o777 == 0o600
    assert server.home.stat().st_mode & 0o777 == 0o700


def test_every_route_but_health_needs_the_token(api: tuple[str, str]) -> None:
    url, token = api
    assert httpx.get(f"{url}/api/v1/healthz").status_code == 200  # probes need no token
    for method, path in [
        ("GET", "/api/v1/jobs"),
        ("GET", "/api/v1/jobs/victim"),
        ("POST", "/api/v1/jobs/victim/cancel"),
        ("DELETE", "/api/v1/jobs/victim"),
        ("GET", "/api/v1/node"),
        ("GET", "/api/v1/nothing-here"),
    ]:
        for headers in ({}, bearer("wrong"), {"authorization": token}):
            r = httpx.request(method, f"{url}{path}", headers=headers)
            assert r.status_code == 401, (method, path, headers)
            assert r.headers["content-type"] == "application/problem+json"
            assert r.headers["www-authenticate"].startswith("Bearer")
            assert r.json()["code"] == "unauthorized"
    assert httpx.get(f"{url}/api/v1/jobs", headers=bearer(token)).status_code == 200


def test_a_rotated_token_replaces_the_old_one(server: ServerProcess, api: tuple[str, str]) -> None:
    url, old = api
    new = rotate(server.client.settings)
    assert httpx.get(f"{url}/api/v1/jobs", headers=bearer(old)).status_code == 401
    assert httpx.get(f"{url}/api/v1/jobs", headers=bearer(new)).status_code == 200
    assert server.client.get("Job", "victim")["metadata"]["name"] == "victim"  # the SDK follows


def test_the_cli_rotates_and_shows_the_token(server: ServerProcess, api: tuple[str, str]) -> None:
    url, old = api
    where = dockyard(server.home, "server", "token")
    assert where.returncode == 0 and old not in where.stdout  # shown only when asked
    assert str(server.home / "token") in where.stdout
    rotated = dockyard(server.home, "server", "token", "--rotate", "--show")
    assert rotated.returncode == 0, rotated.stderr
    new = rotated.stdout.strip().splitlines()[-1]
    assert new != old and new == (server.home / "token").read_text().strip()
    assert httpx.get(f"{url}/api/v1/jobs", headers=bearer(old)).status_code == 401
    assert httpx.get(f"{url}/api/v1/jobs", headers=bearer(new)).status_code == 200


def test_a_web_page_cannot_cancel_a_job(server: ServerProcess, api: tuple[str, str]) -> None:
    url, token = api
    cancel = f"{url}/api/v1/jobs/victim/cancel"
    # what a form or fetch() on another site sends: text/plain, a foreign Origin
    r = httpx.post(cancel, content="x", headers={"content-type": "text/plain"})
    assert r.status_code == 401
    r = httpx.post(cancel, headers={**bearer(token), "origin": "https://evil.example"})
    assert r.status_code == 403 and r.json()["code"] == "forbidden"
    r = httpx.post(cancel, content="x", headers={**bearer(token), "content-type": "text/plain"})
    assert r.status_code == 415 and r.json()["code"] == "unsupported-media-type"
    assert server.client.get("Job", "victim")["status"]["phase"] != "Cancelled"
    # the server's own origin and JSON are fine
    r = httpx.post(
        cancel, headers={**bearer(token), "origin": url, "content-type": "application/json"}
    )
    assert r.status_code == 200


def test_another_host_name_is_refused(api: tuple[str, str]) -> None:
    url, token = api
    port = url.rsplit(":", 1)[1]
    for host in ("evil.example", f"evil.example:{port}", "127.0.0.1.nip.io"):
        r = httpx.get(f"{url}/api/v1/jobs", headers={**bearer(token), "host": host})
        assert r.status_code == 403, host  # DNS rebinding: a name that points here is not enough
    for host in (f"127.0.0.1:{port}", f"localhost:{port}"):
        assert httpx.get(f"{url}/api/v1/jobs", headers={**bearer(token), "host": host}).is_success


def test_code_uploads_take_gzip_only(api: tuple[str, str]) -> None:
    url, token = api
    r = httpx.post(
        f"{url}/api/v1/code", content=b"x", headers={**bearer(token), "content-type": "text/plain"}
    )
    assert r.status_code == 415


def test_the_api_description_says_which_routes_need_the_token(api: tuple[str, str]) -> None:
    url, _ = api
    spec = httpx.get(f"{url}/openapi.json").json()
    assert spec["components"]["securitySchemes"]["token"] == {"type": "http", "scheme": "bearer"}
    assert spec["security"] == [{"token": []}]
    assert spec["paths"]["/api/v1/healthz"]["get"]["security"] == []


def test_a_body_over_the_limit_is_refused_before_it_is_read(server_factory: Any) -> None:
    srv: ServerProcess = server_factory(DOCKYARD_MAX_REQUEST_BYTES="65536")
    c = srv.start()
    url, headers = c.url, {**srv.auth, "content-type": "application/json"}
    docs = [f.volume(f"v{i}") for i in range(1000)]  # ~80 KB of JSON
    declared = httpx.post(f"{url}/api/v1/apply", json={"documents": docs}, headers=srv.auth)
    assert declared.status_code == 413 and declared.json()["code"] == "payload-too-large"
    assert "DOCKYARD_MAX_REQUEST_BYTES" in declared.json()["hint"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        yield b'{"documents": ['
        for _ in range(10_000):
            yield b'{"apiVersion": "dockyard.dev/v1", "kind": "Volume", "metadata": {"name": "x"}},'
        yield b"]}"

    streamed = httpx.post(f"{url}/api/v1/apply", content=chunks(), headers=headers)
    assert streamed.status_code == 413
    assert c.list("Volume") == []  # nothing of either was applied
    small = httpx.post(f"{url}/api/v1/apply", json={"documents": docs[:10]}, headers=srv.auth)
    assert small.status_code == 200 and len(c.list("Volume")) == 10


def test_a_code_upload_declared_too_large_is_refused_at_once(server: ServerProcess) -> None:
    host, port = server.client.url.removeprefix("http://").split(":")
    token = server.auth["authorization"]
    head = (
        f"POST /api/v1/code HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: {token}\r\n"
        f"Content-Type: application/gzip\r\nContent-Length: {MAX_CODE_BYTES + 1}\r\n\r\n"
    )
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head.encode())  # and no body at all: the answer must not wait for it
        answer = b""
        while b"spec.code" not in answer and (chunk := sock.recv(65536)):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 413"), answer
    assert b"payload-too-large" in answer and b"spec.code" in answer


def test_bad_requests_answer_4xx_problems(api: tuple[str, str]) -> None:
    url, token = api
    for method, path, body, status in [
        ("GET", "/api/v1/images?runtime=junk", None, 422),
        ("GET", "/api/v1/nothing-here", None, 404),
        ("PATCH", "/api/v1/jobs", None, 405),
        ("POST", "/api/v1/apply", b"{not json", 400),
        ("POST", "/api/v1/apply", b'{"documents": 5}', 422),
    ]:
        headers = {**bearer(token), "content-type": "application/json"}
        r = httpx.request(method, f"{url}{path}", content=body, headers=headers)
        assert r.status_code == status, (method, path, r.text)
        assert r.headers["content-type"] == "application/problem+json", (method, path)
        assert r.json().get("hint"), (method, path, r.json())
