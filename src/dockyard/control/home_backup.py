"""A full backup — the control plane's own store and every volume — and the disaster
recovery that brings it all back on an empty DOCKYARD_HOME.

The home's snapshot holds the registry (``models``, ``artifacts``), code, dataset manifests,
the admin token, a consistent copy of the SQLite database (``sqlite3`` online backup) and
the list of volumes with their tiers; ``secret.key`` only when the backup is encrypted (in
a plain bucket it would open every secret). The object ``latest.json`` names the snapshots
of the last full backup; it is written last, so it never names a snapshot not uploaded.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from dockyard.control.context import Context
from dockyard.control.volume_dirs import tier_of
from dockyard.control.workloads import resolve_secrets
from dockyard.data.backups import Target
from dockyard.data.snapshots import SnapshotStore, volume_key
from dockyard.errors import Conflict, NotFound
from dockyard.settings import Settings
from dockyard.store import resources as repo

HOME_KEY = "_home"
STAGING = ".backup"
HOME_PARTS = frozenset({"artifacts", "code", "models", "manifests", "token", STAGING})
LATEST = "latest.json"


def _sqlite_copy(settings: Settings, to: Path) -> bool:
    """A consistent copy of the SQLite store (False: the store is not SQLite)."""
    if settings.database_url and not settings.database_url.startswith("sqlite"):
        return False
    source = sqlite3.connect(settings.home / "dockyard.db")
    target = sqlite3.connect(to)
    try:
        source.backup(target)
    finally:
        target.close()
        source.close()
    return True


def backup(ctx: Context, url: str, passphrase_ref: str | None) -> dict[str, Any]:
    started = time.perf_counter()
    settings = ctx.settings
    passphrase = None
    if passphrase_ref is not None:
        passphrase = resolve_secrets(ctx, "default", {"passphrase": passphrase_ref})["passphrase"]
    target = Target.open(settings, url, passphrase)
    store = ctx.snapshots
    with ctx.store.session() as session:
        rows = [
            (r.project, r.name, tier_of(r.status, r.spec))
            for r in repo.list_rows(session, "Volume")
            if r.deleted_at is None
        ]
    pushed = {"chunks": 0, "bytes": 0}
    latest: dict[str, Any] = {"format": 1, "volumes": {}}
    for project, name, tier in rows:
        path = ctx.volumes.ensure(project, name, tier)
        snap = store.snapshot(path, volume_key(project, name), tags=["backup"])
        result = target.push(store, snap.key, [snap.id])
        latest["volumes"][snap.key] = {"snapshot": snap.id, "tier": tier}
        pushed = {k: pushed[k] + result[k] for k in pushed}
    staging = settings.home / STAGING
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(mode=0o700)
    try:
        latest["database"] = _sqlite_copy(settings, staging / "dockyard.db")
        parts = HOME_PARTS | ({"secret.key"} if passphrase is not None else set())
        home = store.snapshot(settings.home, HOME_KEY, tags=["backup"], only=frozenset(parts))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    result = target.push(store, HOME_KEY, [home.id])
    pushed = {k: pushed[k] + result[k] for k in pushed}
    latest |= {"home": home.id, "created": datetime.now(UTC).isoformat()}
    target.put_object(LATEST, orjson.dumps(latest))
    return {
        "target": url,
        "home": home.id,
        "volumes": sorted(latest["volumes"]),
        **pushed,
        "seconds": round(time.perf_counter() - started, 3),
    }


def restore(
    settings: Settings,
    url: str,
    passphrase: str | None,
    progress: Callable[[str], None] = lambda _text: None,
) -> dict[str, Any]:
    """Bring back the last full backup at ``url`` into an empty home (no server running)."""
    from dockyard import filelock

    home = settings.home
    if filelock.held(home / "server.lock"):
        raise Conflict(
            f"a Dockyard server runs on {home}", hint="stop it first: dockyard server stop"
        )
    if (home / "dockyard.db").exists():
        raise Conflict(
            f"{home} already holds a control plane (dockyard.db)",
            hint="restore into an empty DOCKYARD_HOME, or move this one away first",
        )
    target = Target.open(settings, url, passphrase, create=False)
    raw = target.get_object(LATEST)
    if raw is None:
        raise NotFound(f"{url} holds no full backup ({LATEST})", hint="dockyard backup --to URL")
    latest = orjson.loads(raw)
    store = SnapshotStore(settings.snapshots_dir)
    home.mkdir(parents=True, exist_ok=True)
    os.chmod(home, 0o700)
    progress(f"home {latest['home']}")
    target.pull(store, HOME_KEY, latest["home"], progress)
    staging = home / f".restoring-{os.getpid()}"
    store.restore(HOME_KEY, latest["home"], staging)
    try:
        for entry in sorted(staging.iterdir()):
            if entry.name == STAGING:
                continue
            if (home / entry.name).exists():
                raise Conflict(f"{home / entry.name} exists", hint="restore into an empty home")
            os.rename(entry, home / entry.name)
        db = staging / STAGING / "dockyard.db"
        if db.exists():
            os.rename(db, home / "dockyard.db")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    restored = []
    for key, info in sorted(latest["volumes"].items()):
        project, name = key.split("/")
        path = settings.tier_dir(info["tier"]) / project / name
        progress(f"volume {key} {info['snapshot']}")
        target.pull(store, key, info["snapshot"], progress)
        with contextlib.suppress(OSError):
            path.rmdir()  # an empty directory left from before may be replaced
        store.restore(key, info["snapshot"], path)
        restored.append(key)
    if not latest.get("database"):
        progress("the store is not SQLite: restore it with its own tools (pg_restore)")
    return {"home": latest["home"], "volumes": restored, "database": latest.get("database")}
