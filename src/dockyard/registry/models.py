"""The model registry: versions with content-addressed artifacts, metrics, lineage, aliases."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from dockyard.data.artifacts import ArtifactStore
from dockyard.errors import DockyardError, InvalidRequest, ModelArtifactMissing, NotFound
from dockyard.paths import Inside
from dockyard.spec import Metadata, Model, ModelOutput, ModelRef, ModelSpec
from dockyard.spec.models import ALIAS_RE
from dockyard.store import model_versions as versions_repo
from dockyard.store import resources as repo
from dockyard.store.db import Store
from dockyard.store.retry import CONFLICTS, on_conflict
from dockyard.store.tables import ModelVersionRow


def registered_ref(store: Store, source_key: str) -> str | None:
    with store.session() as session:
        row = versions_repo.by_source(session, source_key)
        return None if row is None else f"{row.model}@{row.version}"


MAX_METRICS_BYTES = 1 << 20  # a metrics.json larger than this is refused


def read_metrics(out: Inside, name: str | None) -> dict[str, Any]:
    if name is None or not out.exists(name):
        return {}
    try:
        metrics = json.loads(out.read_bytes(name, MAX_METRICS_BYTES))
    except ValueError as exc:
        raise DockyardError(
            f"metrics file {name} is not valid JSON: {exc}",
            hint='write metrics as a JSON object, e.g. {"accuracy": 0.97}',
        ) from exc
    if not isinstance(metrics, dict):
        raise DockyardError(
            f"metrics file {name} must hold a JSON object, not {type(metrics).__name__}",
            hint='write metrics as a JSON object, e.g. {"accuracy": 0.97}',
        )
    return metrics


def register_output(
    store: Store,
    artifacts: ArtifactStore,
    project: str,
    output: ModelOutput,
    out_dir: Path,
    lineage: dict[str, Any],
    source_key: str,
) -> str:
    """Register the model a job wrote as a new version (once per ``source_key``).

    The job wrote its output directory: it is read through ``Inside`` — a link planted there
    fails the registration instead of making an outside file a model version.
    """
    done = registered_ref(store, source_key)
    if done is not None:
        return done
    out = Inside(out_dir)
    if not out_dir.is_dir() or not out.exists(output.path):
        present = out.files(links="skip") if out_dir.is_dir() else []
        raise ModelArtifactMissing(
            f"the job succeeded but its model file '{output.path}' is missing from the output "
            f"directory (it holds: {', '.join(present) or 'nothing'})",
            hint="write the model to $DOCKYARD_OUTPUT_DIR/" + output.path,
        )
    metrics = read_metrics(out, output.metrics)
    if out.is_dir(output.path):
        names = {rel: f"{output.path}/{rel}" for rel in out.files(output.path)}
        path = "."
    else:
        name = output.path.rsplit("/", 1)[-1]
        names, path = {name: output.path}, name
    files: dict[str, dict[str, Any]] = {}
    for rel, inside in names.items():
        with out.open(inside) as fh:
            digest, size = artifacts.put_stream(fh)
        files[rel] = {"sha256": digest, "size": size}
    return add_version(
        store, project, output.name, output.flavor, path, files, metrics, lineage, source_key
    )


def add_version(
    store: Store,
    project: str,
    model: str,
    flavor: str,
    path: str,
    files: dict[str, Any],
    metrics: dict[str, Any],
    lineage: dict[str, Any],
    source_key: str,
) -> str:

    def insert() -> str:
        try:
            with store.session() as session:
                ensure_model(session, project, model, flavor)
                version = versions_repo.next_version(session, project, model)
                session.add(
                    ModelVersionRow(
                        project=project,
                        model=model,
                        version=version,
                        flavor=flavor,
                        path=path,
                        files=files,
                        metrics=metrics,
                        lineage=lineage,
                        signature={},
                        source_key=source_key,
                    )
                )
                versions_repo.set_alias(session, project, model, "latest", version)
                return f"{model}@{version}"
        except IntegrityError:  # someone registered first: this attempt's version, or another
            done = registered_ref(store, source_key)
            if done is not None:
                return done
            raise

    try:
        ref: str = on_conflict()(insert)
        return ref
    except CONFLICTS:
        pass
    raise DockyardError(
        f"could not register a version of model '{model}'",
        hint="another registration kept racing with this one; retry",
    )


def ensure_model(session: Session, project: str, model: str, flavor: str) -> None:
    key = repo.Key("Model", project, model)
    if repo.get(session, key) is None:
        repo.apply(
            session,
            Model(metadata=Metadata(name=model, project=project), spec=ModelSpec(flavor=flavor)),
        )


def resolve(session: Session, project: str, ref: ModelRef) -> ModelVersionRow:
    """The version a reference names: ``digits@3``, ``digits@production``, ``digits``."""
    if ref.version is not None:
        row = versions_repo.get_version(session, project, ref.name, ref.version)
        if row is None:
            have = [v.version for v in versions_repo.versions(session, project, ref.name)]
            raise NotFound(
                f"model '{ref.name}' has no version {ref.version}",
                hint=f"versions: {have}" if have else "no version registered yet",
            )
        return row
    aliases = versions_repo.aliases(session, project, ref.name)
    if ref.alias not in aliases:
        if not aliases:
            raise NotFound(
                f"model '{ref.name}' has no version yet",
                hint="run a job whose outputs.model names it",
            )
        raise NotFound(
            f"model '{ref.name}' has no alias '{ref.alias}'",
            hint=f"aliases: {', '.join(sorted(aliases))}; set one with "
            f"`dockyard models alias {ref.name} {ref.alias} VERSION`",
        )
    row = versions_repo.get_version(session, project, ref.name, aliases[str(ref.alias)])
    assert row is not None
    return row


def set_alias(session: Session, project: str, model: str, alias: str, version: int) -> None:
    if not ALIAS_RE.match(alias) or alias == "latest":
        raise InvalidRequest(
            f"bad alias '{alias}'" if alias != "latest" else "'latest' is set automatically",
            hint="aliases are lowercase words such as production or staging",
        )
    if versions_repo.get_version(session, project, model, version) is None:
        raise NotFound(
            f"model '{model}' has no version {version}",
            hint=f"see the versions with `dockyard models show {model}`",
        )
    versions_repo.set_alias(session, project, model, alias, version)


def model_dir(home: Path, row: ModelVersionRow) -> Path:
    """Where :func:`materialize` puts a version's files (named by their content)."""
    digest = hashlib.sha256("".join(sorted(f["sha256"] for f in row.files.values())).encode())
    return home / "models" / row.project / row.model / f"{row.version}-{digest.hexdigest()[:12]}"


def materialize(artifacts: ArtifactStore, home: Path, row: ModelVersionRow) -> Path:
    """A directory with the version's files, copied out of the store and verified."""
    return artifacts.materialize(row.files, model_dir(home, row))


def version_view(row: ModelVersionRow, aliases: dict[str, int]) -> dict[str, Any]:
    return {
        "model": row.model,
        "version": row.version,
        "flavor": row.flavor,
        "path": row.path,
        "aliases": sorted(a for a, v in aliases.items() if v == row.version),
        "metrics": row.metrics,
        "lineage": row.lineage,
        "signature": row.signature,
        "files": row.files,
        "createdAt": row.created_at.isoformat().replace("+00:00", "Z"),
    }
