"""The model server's bounds, against real server processes: inputs that answered 500, bodies
that blew up memory, and clients too slow or too large (the security issue's model-server
part). Every oversized input is a 413 (or 400/408/431), never a 500, and the server's peak
memory stays within its limits."""

from __future__ import annotations

import gzip
import json
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.integration.test_serving import ModelServer
from tests.security.serving_fixtures import (
    INFER,
    PeakGrowth,
    all_running,
    model_repository,
    raw_exchange,
    request,
)

MiB = 1 << 20
TIGHT = [
    "--max-body-bytes",
    "4096",
    "--max-decompressed-bytes",
    "8192",
    "--max-elements",
    str(10**9),  # out of the way: what a declared shape alone costs shows
    "--max-depth",
    "8",
    "--max-header-bytes",
    "2048",
    "--header-timeout",
    "0.5",
    "--body-timeout",
    "0.5",
]


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, ModelServer]]:
    """The defaults, and tight limits; started together."""
    root = str(model_repository(tmp_path_factory.mktemp("limits")))
    started = {
        "default": ModelServer("--model-repository", root),
        "tight": ModelServer("--model-repository", root, *TIGHT),
    }
    with all_running(started) as ready_servers:
        yield ready_servers


@pytest.fixture
def default(servers: dict[str, ModelServer]) -> ModelServer:
    return servers["default"]


@pytest.fixture
def tight(servers: dict[str, ModelServer]) -> ModelServer:
    return servers["tight"]


def infer(server: ModelServer, body: bytes, model: str = "onnx", **headers: str) -> tuple[int, str]:
    r = request(
        server,
        "POST",
        f"/v2/models/{model}/infer",
        content=body,
        headers={k.replace("_", "-"): v for k, v in headers.items()},
    )
    return r.status_code, r.json()["error"] if r.status_code != 200 else ""


def deep(depth: int, leaf: str) -> str:
    return "[" * depth + json.dumps(leaf) + "]" * depth


def tensor_json(**fields: Any) -> bytes:
    return json.dumps({"inputs": [{"name": "x", "datatype": "FP32", **fields}]}).encode()


HEADER = tensor_json(shape=[1, 3], parameters={"binary_data_size": 12})
BODY = HEADER + np.ones(3, dtype="<f4").tobytes()


# -- inputs that answered 500 -------------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "headers", "status", "message"),
    [
        # Inference-Header-Content-Length 0 with an empty body
        (b"", {"Inference-Header-Content-Length": "0"}, 400, "0 raw bytes of FP32 do not fit"),
        # a raw body (header length 0) whose length does not fit the model's shape
        (b"\0" * 8, {"Inference-Header-Content-Length": "0"}, 400, "do not fit shape [-1, 3]"),
        (b"\0" * 13, {"Inference-Header-Content-Length": "0"}, 400, "do not fit shape"),
        # a header length that does not match the JSON header or the body
        (BODY, {"Inference-Header-Content-Length": str(len(HEADER) - 5)}, 400, "not valid JSON"),
        (BODY, {"Inference-Header-Content-Length": str(len(HEADER) + 4)}, 400, "not valid JSON"),
        (BODY, {"Inference-Header-Content-Length": str(len(BODY) + 1)}, 400, "does not fit a"),
        (BODY, {"Inference-Header-Content-Length": "-3"}, 400, "does not fit a body"),
        (BODY, {"Inference-Header-Content-Length": "9" * 5000}, 400, "must be an integer"),
        (
            tensor_json(shape=[2, 3], parameters={"binary_data_size": 12}) + b"\0" * 12,
            {"Inference-Header-Content-Length": str(len(HEADER))},
            400,
            "needs 24 bytes, got 12",
        ),
        # shape: [10**12], and dimensions NumPy cannot hold even with 0 elements
        (tensor_json(shape=[10**12], data=[1.0]), {}, 413, "max_elements"),
        (tensor_json(shape=[0, 2**63], data=[]), {}, 413, "max_elements"),
        (tensor_json(shape=[1] * 70, data=[1.0]), {}, 400, "70 dimensions"),
        # nesting: data, and JSON the response would echo (orjson writes 255 levels at most)
        (
            json.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1]}]})
            .replace('"shape"', f'"data": {deep(990, "1")}, "shape"')
            .encode(),
            {},
            400,
            "nested more than 32 levels",
        ),
        (
            b'{"parameters": {"a": '
            + b"[" * 300
            + b"]" * 300
            + b'}, "inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 3], '
            b'"data": [1, 2, 3]}]}',
            {},
            400,
            "'parameters' is nested more than 32",
        ),
        # values and fields of the wrong kind
        (tensor_json(shape=[1, 3], data=[1e300, 0, 0]), {}, 400, "does not fit datatype FP32"),
        (
            b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 3], "data": [1, 2, 3]}],'
            b' "outputs": 5}',
            {},
            400,
            "'outputs' must be a list",
        ),
    ],
)
def test_inputs_that_answered_500_are_client_errors(
    default: ModelServer, body: bytes, headers: dict[str, str], status: int, message: str
) -> None:
    answer, error = infer(default, body, **headers)
    assert (answer, message in error) == (status, True), error


def test_bytes_nested_990_deep_and_kserve_v1_instances(default: ModelServer) -> None:
    body = (
        b'{"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": '
        + deep(990, "x").encode()
        + b'}, {"name": "scale", "datatype": "FP64", "shape": [1, 1], "data": [1]}]}'
    )
    assert infer(default, body, model="custom") == (
        400,
        "input 'text': data is nested more than 32 levels deep (max_depth)",
    )
    r = request(
        default,
        "POST",
        "/v1/models/onnx:predict",
        content=b'{"instances": ' + deep(990, "1").encode() + b"}",
    )
    assert r.status_code == 400 and "nested more than 32" in r.json()["error"]


# -- memory -------------------------------------------------------------------------------
def gzip_bomb(mebibytes: int) -> bytes:
    """A valid gzip stream of ``mebibytes`` MiB of zeros, built from one compressed MiB: after
    a full flush the compressor starts afresh, so every further MiB compresses the same."""
    zeros = b"\0" * MiB
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    first = packer.compress(zeros) + packer.flush(zlib.Z_FULL_FLUSH)
    again = packer.compress(zeros) + packer.flush(zlib.Z_FULL_FLUSH)
    crc = 0
    for _ in range(mebibytes):
        crc = zlib.crc32(zeros, crc)
    last_block = b"\x03\x00"  # an empty final block (fixed Huffman codes)
    trailer = struct.pack("<II", crc, (mebibytes * MiB) & 0xFFFFFFFF)
    return first + again * (mebibytes - 1) + last_block + trailer


def test_the_gzip_bomb_is_a_valid_stream() -> None:
    assert gzip.decompress(gzip_bomb(3)) == b"\0" * (3 * MiB)


def test_a_gzip_bomb_stops_at_the_decompressed_limit(default: ModelServer) -> None:
    """The issue's 1 MiB gzip body that inflated to 1 GiB (2.27 GB RSS): now 413, and the
    server's peak memory grows by less than twice the 64 MiB limit."""
    bomb = gzip_bomb(1024)
    assert len(bomb) < 2 * MiB
    with PeakGrowth(default.proc.pid) as peak:
        status, error = infer(default, bomb, Content_Encoding="gzip")
    assert status == 413 and "inflates to more than 67108864 bytes" in error
    assert peak.growth < 128 * MiB, peak.growth


def test_a_small_header_cannot_make_the_server_allocate_a_large_tensor(
    default: ModelServer, tight: ModelServer
) -> None:
    """The issue's 100-byte header with BYTES ``shape: [10**8]`` (0.95 GB): refused before
    anything is allocated for it, by the element limit (defaults) and, with the limit out of
    the way, because 10**8 elements cannot fit in 4 bytes."""
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "text",
                    "datatype": "BYTES",
                    "shape": [10**8],
                    "parameters": {"binary_data_size": 4},
                },
                {"name": "scale", "datatype": "FP64", "shape": [1, 1], "data": [1]},
            ]
        }
    ).encode()
    body = header + struct.pack("<I", 0)
    for server, status, message in (
        (default, 413, "more elements than the limit 4194304"),
        (tight, 400, "100000000 BYTES elements need at least 400000000 bytes"),
    ):
        with PeakGrowth(server.proc.pid) as peak:
            answer, error = infer(
                server, body, model="custom", Inference_Header_Content_Length=str(len(header))
            )
        assert answer == status and message in error, error
        assert peak.growth < 32 * MiB, peak.growth


def test_the_element_limit_is_exact(default: ModelServer) -> None:
    """4 Mi elements (the default) pass — here 16 MiB of binary FP32 — one row more does not."""
    for rows, status in ((4194304 // 3, 200), (4194304 // 3 + 1, 413)):
        x = np.zeros((rows, 3), dtype="<f4")
        header = tensor_json(shape=[rows, 3], parameters={"binary_data_size": x.nbytes})
        answer, error = infer(
            default, header + x.tobytes(), Inference_Header_Content_Length=str(len(header))
        )
        assert answer == status, error


# -- body size, as sent and decompressed --------------------------------------------------
def padded(size: int) -> bytes:
    body = json.dumps(INFER).encode()
    return body + b" " * (size - len(body))


def test_bodies_are_limited_as_sent_and_decompressed(tight: ModelServer) -> None:
    assert infer(tight, padded(4096))[0] == 200
    status, error = infer(tight, padded(4097))
    assert status == 413 and "larger than 4096 bytes (max_body_bytes)" in error
    # without Content-Length (chunked), the body is counted as it arrives
    r = request(tight, "POST", "/v2/models/onnx/infer", content=iter([padded(3000), b" " * 3000]))
    assert r.status_code == 413
    for encoding, pack in (("gzip", gzip.compress), ("deflate", zlib.compress)):
        assert infer(tight, pack(padded(8192)), Content_Encoding=encoding)[0] == 200
        status, error = infer(tight, pack(padded(8193)), Content_Encoding=encoding)
        assert status == 413 and "more than 8192 bytes (max_decompressed_bytes)" in error
        status, error = infer(tight, pack(padded(100))[:-6], Content_Encoding=encoding)
        assert status == 400 and f"not valid {encoding} data" in error
    # one gzip member per body: packing many (empty ones cost nothing to send) is refused
    members = gzip.compress(padded(100)) + gzip.compress(b"") * 100
    status, error = infer(tight, members, Content_Encoding="gzip")
    assert status == 400 and "data after the end of the gzip stream" in error


def test_a_declared_length_over_the_limit_is_refused_before_the_body(tight: ModelServer) -> None:
    answer = raw_exchange(
        tight,
        b"POST /v2/models/onnx/infer HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Length: 1073741824\r\n\r\n" + b" " * 1000,
    )
    assert answer.startswith(b"HTTP/1.1 413 ") and answer.count(b"HTTP/1.1") == 1


def test_nesting_is_limited(tight: ModelServer) -> None:
    for depth, message in ((8, "expected shape [-1, 3]"), (9, "nested more than 8 levels")):
        body = tensor_json(shape=[1]).replace(
            b'"shape"', b'"data": ' + deep(depth, "1").replace('"', "").encode() + b', "shape"'
        )
        status, error = infer(tight, body)
        assert status == 400 and message in error, error


# -- slow and large request heads ---------------------------------------------------------
def test_slow_and_silent_clients_are_cut_off(tight: ModelServer) -> None:
    """uvicorn has no header timeout: a connection that never finished its headers stayed
    open forever. Now 408 after --header-timeout (and after --body-timeout for the body)."""
    silent = raw_exchange(tight)
    assert silent.startswith(b"HTTP/1.1 408 ") and b"header_timeout" in silent
    slow = raw_exchange(tight, b"GET /v2/health/live HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
    assert slow.startswith(b"HTTP/1.1 408 ") and b"header_timeout" in slow
    body = raw_exchange(
        tight,
        b"POST /v2/models/onnx/infer HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n",
        b'{"inputs": ',
    )
    assert body.startswith(b"HTTP/1.1 408 ") and b"body_timeout" in body
    # answered early (unknown model) while the body trickles: closed without another answer
    early = raw_exchange(
        tight,
        b"POST /v2/models/ghost/infer HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n",
        b'{"inputs": ',
    )
    assert early.startswith(b"HTTP/1.1 404 ") and early.count(b"HTTP/1.1") == 1


def test_request_heads_are_limited_in_size(tight: ModelServer) -> None:
    fits = request(tight, "GET", "/v2/health/live", headers={"X-Pad": "a" * 1500})
    assert fits.status_code == 200
    answer = raw_exchange(
        tight,
        b"GET /v2/health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n",
        *[b"X-Pad-%d: %s\r\n" % (i, b"a" * 500) for i in range(8)],
    )
    assert answer.startswith(b"HTTP/1.1 431 ") and b"max_header_bytes" in answer


def test_keep_alive_connections_still_serve_many_requests(tight: ModelServer) -> None:
    two = raw_exchange(
        tight,
        b"GET /v2/health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        b"GET /v2/health/live HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    )
    assert two.count(b"HTTP/1.1 200 OK") == 2


def test_settings_are_refused_when_out_of_range(tmp_path: Path) -> None:
    from dockyard.serving.settings import SettingsError, server_settings

    for flags in ({"max_depth": 65}, {"max_body_bytes": 0}, {"header_timeout": -1.0}):
        with pytest.raises(SettingsError, match=next(iter(flags))):
            server_settings(flags, {})
    env = server_settings({}, {"DOCKYARD_SERVING_MAX_ELEMENTS": "1000"})
    assert env.max_elements == 1000
    assert (
        server_settings({"max_elements": 7}, {"DOCKYARD_SERVING_MAX_ELEMENTS": "9"}).max_elements
        == 7
    )


def test_the_documented_limits_are_the_settings() -> None:
    from dockyard.serving.limits import LIMITS
    from dockyard.serving.settings import ServerSettings

    doc = (Path(__file__).resolve().parents[2] / "docs" / "serving.md").read_text()
    rows = {line.split("|")[1].strip(" `"): line for line in doc.splitlines() if "| `--" in line}
    for name, (_, default, _) in LIMITS.items():
        row = rows["--" + name.replace("_", "-")]
        shown = f"{default:g} s" if isinstance(default, float) else str(default)
        assert f"| {shown}" in row, row
        assert getattr(ServerSettings(), name) == default
