"""A Service's model servers: a token from a secret (spec.auth) guards inference and the
repository extension; without spec.auth, loading and unloading are refused to everyone."""

from __future__ import annotations

import httpx
import pytest

from dockyard.errors import Unauthorized
from tests import factories as f
from tests.conftest import ServerProcess, wait_until
from tests.integration.test_services import ready, request, train

TOKEN = "a-long-serving-token-0123456789"


def test_a_service_with_auth_needs_its_token(server: ServerProcess) -> None:
    c = server.client
    train(c)
    c.set_secret("serving", {"token": TOKEN, "short": "too-short"})
    c.apply([f.service("tiny", "tiny@latest", auth={"token": {"secretRef": "serving/token"}})])
    url = ready(c, "tiny", 1)["status"]["url"]
    with pytest.raises(Unauthorized, match="needs its token"):
        c.predict("tiny", request(3.0))
    with pytest.raises(Unauthorized, match="was refused"):
        c.predict("tiny", request(3.0), token="wrong-token-but-long-enough")
    assert c.predict("tiny", request(3.0), token=TOKEN)["outputs"][0]["data"] == [1]
    bearer = {"authorization": f"Bearer {TOKEN}"}
    unload = f"{url}/v2/repository/models/tiny/unload"
    assert httpx.post(unload, timeout=5).status_code == 401
    assert httpx.get(f"{url}/v2/health/ready", timeout=5).status_code == 200  # probes: open
    assert httpx.post(f"{url}/v2/repository/index", headers=bearer, timeout=5).status_code == 200
    logs = b"".join(c.logs("Service", "tiny")).decode()
    assert TOKEN not in logs and TOKEN not in str(c.get("Service", "tiny"))

    # a token the model server would refuse is named before anything starts
    c.apply([f.service("short", "tiny@latest", auth={"token": {"secretRef": "serving/short"}})])
    wait_until(lambda: c.get("Service", "short")["status"].get("reason") == "StartFailed", 60)
    message = c.get("Service", "short")["status"]["message"]
    assert "the token in secret 'serving/short' has 9 characters" in message


def test_without_auth_the_repository_is_closed_and_inference_open(server: ServerProcess) -> None:
    c = server.client
    train(c)
    c.apply([f.service("open", "tiny@latest")])
    url = ready(c, "open", 1)["status"]["url"]
    assert c.predict("open", request(3.0))["outputs"][0]["data"] == [1]
    refused = httpx.post(f"{url}/v2/repository/models/tiny/unload", timeout=5)
    assert refused.status_code == 403
    assert c.predict("open", request(0.0))["outputs"][0]["data"] == [0]  # still loaded
