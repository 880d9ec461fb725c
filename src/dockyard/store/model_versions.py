"""Model versions and aliases in the registry tables."""

from __future__ import annotations

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from dockyard.store.tables import ModelAliasRow, ModelVersionRow, utcnow


def versions(session: Session, project: str, model: str) -> list[ModelVersionRow]:
    return list(
        session.scalars(
            select(ModelVersionRow)
            .where(ModelVersionRow.project == project, ModelVersionRow.model == model)
            .order_by(ModelVersionRow.version)
        )
    )


def get_version(session: Session, project: str, model: str, version: int) -> ModelVersionRow | None:
    return session.scalar(
        select(ModelVersionRow).where(
            ModelVersionRow.project == project,
            ModelVersionRow.model == model,
            ModelVersionRow.version == version,
        )
    )


def by_source(session: Session, source_key: str) -> ModelVersionRow | None:
    return session.scalar(select(ModelVersionRow).where(ModelVersionRow.source_key == source_key))


def next_version(session: Session, project: str, model: str) -> int:
    current = session.scalar(
        select(func.max(ModelVersionRow.version)).where(
            ModelVersionRow.project == project, ModelVersionRow.model == model
        )
    )
    return (current or 0) + 1


def aliases(session: Session, project: str, model: str) -> dict[str, int]:
    rows = session.scalars(
        select(ModelAliasRow).where(ModelAliasRow.project == project, ModelAliasRow.model == model)
    )
    return {r.alias: r.version for r in rows}


def set_alias(session: Session, project: str, model: str, alias: str, version: int) -> None:
    row = session.get(ModelAliasRow, (project, model, alias))
    if row is None:
        session.add(
            ModelAliasRow(
                project=project, model=model, alias=alias, version=version, updated_at=utcnow()
            )
        )
    else:
        row.version, row.updated_at = version, utcnow()


def delete_alias(session: Session, project: str, model: str, alias: str) -> bool:
    result = session.execute(
        delete(ModelAliasRow).where(
            ModelAliasRow.project == project,
            ModelAliasRow.model == model,
            ModelAliasRow.alias == alias,
        )
    )
    return bool(getattr(result, "rowcount", 0))


def delete_model(session: Session, project: str, model: str) -> None:
    session.execute(
        delete(ModelAliasRow).where(ModelAliasRow.project == project, ModelAliasRow.model == model)
    )
    session.execute(
        delete(ModelVersionRow).where(
            ModelVersionRow.project == project, ModelVersionRow.model == model
        )
    )
