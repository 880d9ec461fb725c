"""Printing for humans (rich tables) and for programs (``-o json|yaml``)."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import yaml
from rich.console import Console
from rich.table import Table

from dockyard.spec.common import format_bytes
from dockyard.spec.status import READY, Phase

console = Console()
err_console = Console(stderr=True)


class Format(StrEnum):
    table = "table"
    json = "json"
    yaml = "yaml"


def dump(data: Any, fmt: Format) -> None:
    if fmt == Format.json:
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
    else:
        sys.stdout.write(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))


def age(timestamp: str | None) -> str:
    if not timestamp:
        return "-"
    then = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    seconds = int((datetime.now(UTC) - then).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{max(seconds, 0)}s"


PHASE_STYLE: dict[str, str] = {
    **{p: "cyan" for p in Phase},  # work in progress
    **{p: "green" for p in READY},
    Phase.FAILED: "red",
    Phase.PENDING: "yellow",
    Phase.CANCELLED: "magenta",
    Phase.TERMINATING: "magenta",
}


def phase(value: str | None) -> str:
    text: str = value or "-"
    style = PHASE_STYLE.get(str(text))
    return f"[{style}]{text}[/{style}]" if style else text


def size(value: Any) -> str:
    return "-" if value in (None, "") else format_bytes(float(value))


def _res(spec: dict[str, Any]) -> str:
    r = spec.get("resources", {})
    parts = [f"{r.get('cpu', 0):g} cpu"]
    if r.get("memory"):
        parts.append(size(r["memory"]))
    if r.get("gpu"):
        parts.append(f"{r['gpu']} gpu")
    return ", ".join(parts)


def _usage(usage: dict[str, Any] | None) -> str:
    if not usage:
        return "-"
    return f"{usage['cpuSeconds']:.1f}s cpu, {size(usage['maxRssBytes'])} peak"


def short(value: Any, width: int = 70) -> str:
    text = str(value or "")
    return text if len(text) <= width else text[: width - 1] + "…"


COLUMNS: dict[str, list[tuple[str, Any]]] = {
    "Volume": [
        ("TIER", lambda r: r["spec"].get("tier")),
        ("SIZE", lambda r: size(r["spec"].get("size"))),
        ("USED", lambda r: size(r["status"].get("usedBytes"))),
        ("SNAPSHOTS", lambda r: r["status"].get("snapshots", "-")),
        (
            "LAST BACKUP",
            lambda r: age(r["status"]["lastBackupAt"]) if r["status"].get("lastBackupAt") else "-",
        ),
    ],
    "Environment": [
        ("PACKAGES", lambda r: len(r["spec"].get("packages", []))),
        ("HASH", lambda r: (r["status"].get("hash") or "")[:12]),
    ],
    "Dataset": [
        ("VOLUME", lambda r: r["spec"].get("volume")),
        ("FILES", lambda r: r["status"].get("files", "-")),
        ("SIZE", lambda r: size(r["status"].get("bytes"))),
        ("SHA256", lambda r: (r["status"].get("sha256") or "")[:12]),
    ],
    "Model": [
        ("VERSIONS", lambda r: r["status"].get("versions", 0)),
        ("LATEST", lambda r: r["status"].get("latest") or "-"),
        (
            "ALIASES",
            lambda r: ", ".join(
                f"{k}={v}" for k, v in sorted((r["status"].get("aliases") or {}).items())
            ),
        ),
    ],
    "Job": [
        ("ATTEMPTS", lambda r: r["status"].get("attempts", 0)),
        ("RESOURCES", lambda r: _res(r["spec"])),
        ("USED", lambda r: _usage(r["status"].get("usage"))),
        ("PRIORITY", lambda r: r["spec"].get("priority", 0)),
    ],
    "Service": [
        ("MODEL", lambda r: r["status"].get("modelVersion") or r["spec"].get("model")),
        (
            "READY",
            lambda r: f"{r['status'].get('readyReplicas', 0)}/{r['spec'].get('replicas', 1)}",
        ),
        ("URL", lambda r: r["status"].get("url") or "-"),
    ],
}


def resource_table(kind: str, items: list[dict[str, Any]], title: str | None = None) -> Table:
    table = Table(title=title, title_justify="left", box=None, header_style="bold")
    extra = COLUMNS.get(kind, [])
    for header in ["NAME", "PHASE", *[h for h, _ in extra], "AGE", "MESSAGE"]:
        table.add_column(header, overflow="fold" if header == "MESSAGE" else "ellipsis")
    for item in items:
        status = item.get("status", {})
        table.add_row(
            item["metadata"]["name"],
            phase(status.get("phase")),
            *[str(fn(item)) for _, fn in extra],
            age(item["metadata"]["createdAt"]),
            short(status.get("message")),
        )
    return table
