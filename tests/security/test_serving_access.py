"""Who may do what on a model server, against real server processes: the bearer token of the
repository extension (and of inference when asked), and what a web page may send (no foreign
Origin, no form or text bodies, no Host that is not the server's: DNS rebinding)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.test_serving import ModelServer
from tests.security.serving_fixtures import (
    AUTH,
    INFER,
    TOKEN,
    all_running,
    model_repository,
    request,
)

WRONG = {"Authorization": "Bearer " + "x" * len(TOKEN)}
EVIL = "http://evil.example"


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, ModelServer]]:
    """token: the token (environment), inference too, an allowed host and origin;
    plain: no token, no flags; open: --no-auth, bound to every address (as in containers)."""
    root = str(model_repository(tmp_path_factory.mktemp("access"), "spare", "envcheck"))
    started = {
        "token": ModelServer(
            "--model-repository",
            root,
            "--auth-inference",
            "--allowed-host",
            "models.example",
            "--allowed-origin",
            "https://ui.example",
            env={"DOCKYARD_SERVING_TOKEN": TOKEN},
        ),
        "plain": ModelServer("--model-repository", root),
        "open": ModelServer("--model-repository", root, "--no-auth", "--host", "0.0.0.0"),
    }
    with all_running(started) as ready_servers:
        yield ready_servers


@pytest.fixture
def token(servers: dict[str, ModelServer]) -> ModelServer:
    return servers["token"]


@pytest.fixture
def plain(servers: dict[str, ModelServer]) -> ModelServer:
    return servers["plain"]


@pytest.fixture
def open_(servers: dict[str, ModelServer]) -> ModelServer:
    return servers["open"]


def post(server: ModelServer, path: str, **kwargs: Any) -> httpx.Response:
    return request(server, "POST", path, **kwargs)


def ready(server: ModelServer, model: str = "spare") -> bool:
    return request(server, "GET", f"/v2/models/{model}/ready").status_code == 200


# -- the token ----------------------------------------------------------------------------
def test_the_repository_extension_needs_the_token(token: ModelServer) -> None:
    for path in (
        "/v2/repository/index",
        "/v2/repository/models/spare/unload",
        "/v2/repository/models/spare/load",
    ):
        missing = post(token, path)
        assert missing.status_code == 401 and "needs a bearer token" in missing.json()["error"]
        assert missing.headers["www-authenticate"] == 'Bearer realm="dockyard-serving"'
        for headers in (WRONG, {"Authorization": f"Basic {TOKEN}"}, {"Authorization": TOKEN}):
            wrong = post(token, path, headers=headers)
            assert wrong.status_code == 401, headers
            assert 'error="invalid_token"' in wrong.headers["www-authenticate"]
    assert ready(token)  # nothing was unloaded
    assert post(token, "/v2/repository/models/spare/unload", headers=AUTH).status_code == 200
    assert not ready(token)
    assert post(token, "/v2/repository/models/spare/load", headers=AUTH).status_code == 200
    assert ready(token)
    index = post(token, "/v2/repository/index", headers=AUTH)
    assert {"name": "spare", "version": "1", "state": "READY", "reason": ""} in index.json()


def test_inference_needs_the_token_when_asked_and_probes_stay_open(token: ModelServer) -> None:
    assert post(token, "/v2/models/onnx/infer", json=INFER).status_code == 401
    assert post(token, "/v2/models/onnx/infer", json=INFER, headers=WRONG).status_code == 401
    assert post(token, "/v2/models/onnx/infer", json=INFER, headers=AUTH).status_code == 200
    v1 = {"instances": [[1.0, 2.0, 3.0]]}
    assert post(token, "/v1/models/onnx:predict", json=v1).status_code == 401
    assert post(token, "/v1/models/onnx:predict", json=v1, headers=AUTH).status_code == 200
    # an unknown model is not revealed before the token
    assert post(token, "/v2/models/ghost/infer", json=INFER).status_code == 401
    for path in (
        "/v2",
        "/v2/health/live",
        "/v2/health/ready",
        "/v2/models",
        "/v2/models/onnx",
        "/v2/models/onnx/ready",
        "/v1/models",
        "/v1/models/onnx",
        "/metrics",
    ):
        assert request(token, "GET", path).status_code == 200, path


def test_models_never_see_the_token(token: ModelServer) -> None:
    r = post(
        token,
        "/v2/models/envcheck/infer",
        json={"inputs": [{"name": "x", "datatype": "FP64", "shape": [1], "data": [0]}]},
        headers=AUTH,
    )
    assert r.status_code == 200, r.text
    assert r.json()["outputs"][0]["data"] == [0.0]


def test_without_a_token_the_repository_extension_is_off(plain: ModelServer) -> None:
    for path in ("/v2/repository/index", "/v2/repository/models/spare/unload"):
        for headers in ({}, AUTH):
            r = post(plain, path, headers=headers)
            assert r.status_code == 403, r.text
            assert "started without a token" in r.json()["error"]
            assert "DOCKYARD_SERVING_TOKEN" in r.json()["error"]
    assert ready(plain)
    assert post(plain, "/v2/models/onnx/infer", json=INFER).status_code == 200  # open


def test_no_auth_opens_the_repository_for_local_development(open_: ModelServer) -> None:
    assert post(open_, "/v2/repository/models/spare/unload").status_code == 200
    assert not ready(open_)
    assert post(open_, "/v2/repository/models/spare/load").status_code == 200
    assert ready(open_)


def test_tritonclient_sends_the_token(token: ModelServer) -> None:
    httpclient = pytest.importorskip("tritonclient.http")
    from tritonclient.utils import InferenceServerException

    client = httpclient.InferenceServerClient(url=f"127.0.0.1:{token.port}")
    try:
        with pytest.raises(InferenceServerException) as refused:
            client.unload_model("spare")
        assert refused.value.status() == "401"
        assert ready(token)
        assert {m["name"] for m in client.get_model_repository_index(headers=AUTH)} >= {"spare"}
        client.unload_model("spare", headers=AUTH)  # a JSON body without Content-Type
        assert not client.is_model_ready("spare")
        client.load_model("spare", headers=AUTH)
        assert client.is_model_ready("spare")
    finally:
        client.close()


# -- what a web page may send -------------------------------------------------------------
@pytest.mark.parametrize(
    ("content_type", "status"),
    [
        ("text/plain", 415),
        ("text/plain;charset=UTF-8", 415),
        ("application/x-www-form-urlencoded", 415),
        ("multipart/form-data; boundary=x", 415),
        ("application/octet-stream", 415),
        ("application/json", 200),
        ("Application/JSON; charset=utf-8", 200),
        (None, 200),  # tritonclient sends none
    ],
)
def test_repository_bodies_must_be_json(
    open_: ModelServer, content_type: str | None, status: int
) -> None:
    headers = {} if content_type is None else {"Content-Type": content_type}
    r = post(open_, "/v2/repository/models/spare/unload", content=b"{}", headers=headers)
    assert r.status_code == status, r.text
    if status == 415:
        assert "unsupported Content-Type" in r.json()["error"] and ready(open_)
    else:
        assert post(open_, "/v2/repository/models/spare/load").status_code == 200


def test_inference_bodies_must_be_json_or_binary(plain: ModelServer) -> None:
    body = httpx.Request("POST", "http://x", json=INFER).content
    for content_type, status in (
        ("text/plain", 415),
        ("application/x-www-form-urlencoded", 415),
        ("application/json", 200),
        ("application/octet-stream", 200),
    ):
        headers = {"Content-Type": content_type}
        r = post(plain, "/v2/models/onnx/infer", content=body, headers=headers)
        assert r.status_code == status, (content_type, r.text)
    v1 = b'{"instances": [[1.0, 2.0, 3.0]]}'
    r = post(plain, "/v1/models/onnx:predict", content=v1, headers={"Content-Type": "text/plain"})
    assert r.status_code == 415


def test_foreign_origins_are_refused(token: ModelServer, open_: ModelServer) -> None:
    """A page of another site cannot unload a model (the issue's text/plain request from a
    foreign Origin), nor infer, nor read anything — even on a server open to every Host."""
    for server, headers in ((token, AUTH), (open_, {})):
        for origin in (EVIL, "null", f"http://127.0.0.1:{server.port + 1}"):
            unload = post(
                server,
                "/v2/repository/models/spare/unload",
                content=b"{}",
                headers={**headers, "Origin": origin, "Content-Type": "text/plain"},
            )
            assert unload.status_code == 403, unload.text
            assert "are not accepted" in unload.json()["error"]
            foreign = {"Origin": origin, **headers}
            r = post(server, "/v2/models/onnx/infer", json=INFER, headers=foreign)
            assert r.status_code == 403
            r = request(server, "GET", "/v2/health/live", headers={"Origin": origin})
            assert r.status_code == 403
        assert ready(server)
        own = {"Origin": f"http://127.0.0.1:{server.port}"}
        assert request(server, "GET", "/v2/models/onnx", headers=own).status_code == 200
    allowed = {"Origin": "https://ui.example", **AUTH}
    assert post(token, "/v2/models/onnx/infer", json=INFER, headers=allowed).status_code == 200


def test_dns_rebinding_is_refused(
    token: ModelServer, plain: ModelServer, open_: ModelServer
) -> None:
    """A name the attacker controls, pointed at 127.0.0.1, reaches the server with its own
    Host: refused unless the server listens on every address (containers)."""

    def live(server: ModelServer, host: str) -> int:
        return request(server, "GET", "/v2/health/live", headers={"Host": host}).status_code

    for server in (token, plain):
        port = server.port
        assert live(server, f"evil.example:{port}") == 403
        assert live(server, "127.0.0.1.evil.example") == 403
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}", "LOCALHOST"):
            assert live(server, host) == 200, host
    assert live(token, f"models.example:{token.port}") == 200  # --allowed-host
    assert live(plain, f"models.example:{plain.port}") == 403
    rebinding = request(
        plain,
        "POST",
        "/v2/models/onnx/infer",
        json=INFER,
        headers={"Host": f"evil.example:{plain.port}"},
    )
    assert rebinding.status_code == 403 and "not an address of this server" in rebinding.text
    assert live(open_, f"evil.example:{open_.port}") == 200  # 0.0.0.0: any name


# -- settings ----------------------------------------------------------------------------
def test_token_settings(tmp_path: Path) -> None:
    from dockyard.serving.settings import SettingsError, server_settings

    file = tmp_path / "token"
    file.write_text(TOKEN + "\n")
    assert server_settings({}, {}, file).token_bytes() == TOKEN.encode()
    env = {"DOCKYARD_SERVING_TOKEN_FILE": str(file)}
    assert server_settings({}, env).token_bytes() == TOKEN.encode()
    assert server_settings({}, {"DOCKYARD_SERVING_TOKEN": TOKEN}).token_bytes() == TOKEN.encode()
    assert server_settings({}, {}).token is None
    for flags, environ, message in (
        ({}, {"DOCKYARD_SERVING_TOKEN": "short"}, "at least 16 characters"),
        ({"no_auth": True}, {"DOCKYARD_SERVING_TOKEN": TOKEN}, "contradicts a token"),
        ({"auth_inference": True}, {}, "needs a token"),
        ({}, {"DOCKYARD_SERVING_TOKEN_FILE": str(tmp_path / "nope")}, "cannot read"),
    ):
        with pytest.raises(SettingsError, match=message) as info:
            server_settings(flags, environ)
        assert TOKEN not in str(info.value)
    assert "**" in repr(server_settings({}, {"DOCKYARD_SERVING_TOKEN": TOKEN}))


def test_a_contradictory_start_stops_with_a_clear_line(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "dockyard.serving", "--model", f"x={tmp_path}", "--no-auth"],
        env={**os.environ, "DOCKYARD_SERVING_TOKEN": TOKEN},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 2
    assert "no_auth contradicts a token" in proc.stderr and TOKEN not in proc.stderr
