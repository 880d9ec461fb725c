"""The model server's bounds: names, defaults, and what each one bounds.

Plain constants, no imports: the command line reads them before a warm-pool hand-over, where
every millisecond of import counts. ``settings.ServerSettings`` validates them; docs/serving.md
("Limits and access") documents them.
"""

from __future__ import annotations

MiB = 1 << 20
ENV_PREFIX = "DOCKYARD_SERVING_"
TOKEN_ENV = ENV_PREFIX + "TOKEN"

MAX_BODY_BYTES = 64 * MiB
MAX_DECOMPRESSED_BYTES = 64 * MiB
MAX_ELEMENTS = 1 << 22  # 4 Mi elements: 16 MiB of FP32; bounds what decoding allocates
MAX_DEPTH = 32
MAX_HEADER_BYTES = 64 * 1024
HEADER_TIMEOUT = 10.0
BODY_TIMEOUT = 60.0

# name: (type, default, what it bounds) — each is the flag --name-with-dashes and the
# environment variable DOCKYARD_SERVING_NAME
LIMITS: dict[str, tuple[type[int] | type[float], int | float, str]] = {
    "max_body_bytes": (int, MAX_BODY_BYTES, "largest request body as sent (413 beyond)"),
    "max_decompressed_bytes": (
        int,
        MAX_DECOMPRESSED_BYTES,
        "largest request body after its Content-Encoding (413 beyond)",
    ),
    "max_elements": (int, MAX_ELEMENTS, "most tensor elements in one request (413 beyond)"),
    "max_depth": (
        int,
        MAX_DEPTH,
        "most levels of nesting: tensor dimensions, nested data, echoed JSON (400 beyond)",
    ),
    "max_header_bytes": (
        int,
        MAX_HEADER_BYTES,
        "largest request line and headers (431 beyond)",
    ),
    "header_timeout": (
        float,
        HEADER_TIMEOUT,
        "seconds for a client to send a request's line and headers (408 beyond)",
    ),
    "body_timeout": (
        float,
        BODY_TIMEOUT,
        "seconds for a client to send a request's body (408 beyond)",
    ),
}


def env_name(field: str) -> str:
    return ENV_PREFIX + field.upper()
