"""The store on SQLite and on a real PostgreSQL: migrations, apply, leases, registry rows."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import inspect, update

from dockyard.errors import Conflict
from dockyard.spec.loader import validate_data
from dockyard.store import leases, model_versions, tasks
from dockyard.store import resources as repo
from dockyard.store.db import Store
from dockyard.store.tables import ModelVersionRow, TaskRow, utcnow
from tests import factories as f


@pytest.fixture
def store(database_url: str) -> Store:
    s = Store(database_url)
    s.migrate()
    s.migrate()  # idempotent
    yield s  # type: ignore[misc]
    s.close()


def test_schema_created(store: Store) -> None:
    tables = set(inspect(store.engine).get_table_names())
    assert {
        "resources",
        "events",
        "workloads",
        "model_versions",
        "model_aliases",
        "alembic_version",
    } <= tables


def test_apply_is_idempotent_and_bumps_generation(store: Store) -> None:
    job = validate_data(f.job("train", ["python", "x.py"]))
    with store.session() as s:
        row, action = repo.apply(s, job)
        assert (action, row.generation) == ("created", 1)
    with store.session() as s:
        row, action = repo.apply(s, job)
        assert (action, row.generation) == ("unchanged", 1)
    changed = validate_data(f.job("train", ["python", "y.py"]))
    with store.session() as s:
        row, action = repo.apply(s, changed)
        assert (action, row.generation) == ("configured", 2)
        assert row.spec["command"] == ["python", "y.py"]
    labelled = validate_data(
        f.job("train", ["python", "y.py"])
        | {"metadata": {"name": "train", "labels": {"team": "a"}}}
    )
    with store.session() as s:
        row, action = repo.apply(s, labelled)
        assert (action, row.generation) == ("configured", 2)  # labels are not spec


def test_timestamps_are_utc_aware(store: Store) -> None:
    with store.session() as s:
        repo.apply(s, validate_data(f.volume("v")))
    with store.session() as s:
        row = repo.require(s, repo.Key("Volume", "default", "v"))
        assert row.created_at.tzinfo is not None
        assert abs((utcnow() - row.created_at).total_seconds()) < 60


def test_apply_refuses_a_resource_being_deleted(store: Store) -> None:
    vol = validate_data(f.volume("v"))
    with store.session() as s:
        row, _ = repo.apply(s, vol)
        repo.mark_deleted(s, row, {})
    with store.session() as s, pytest.raises(Conflict, match="being deleted"):
        repo.apply(s, vol)


def test_task_leases_fence_their_outcome(store: Store) -> None:
    claim = lambda holder, **kw: tasks.claim(s, "k", "uid", "register", "g1", holder, 60, **kw)  # noqa: E731
    with store.session() as s:
        assert claim("a")
    with store.session() as s:
        assert not claim("b")  # a holds it
        assert claim("a")  # its own again (a restart of the same holder)
        assert tasks.renew(s, ["k"], "a", 60) == 1 and tasks.renew(s, ["k"], "b", 60) == 0
    with store.session() as s:  # a's lease ran out: b takes it
        s.execute(update(TaskRow).values(lease_expires=utcnow() - timedelta(seconds=1)))
        assert claim("b")
    with store.session() as s:
        assert not tasks.finish(s, "k", "a", tasks.SUCCEEDED, {"ref": "stale"})  # fenced out
        assert tasks.finish(s, "k", "b", tasks.SUCCEEDED, {"ref": "m@1"})
    with store.session() as s:
        row = s.get(TaskRow, "k")
        assert row is not None and (row.state, row.result, row.lease_owner) == (
            "succeeded",
            {"ref": "m@1"},
            None,
        )
        assert claim("c")
        s.expire_all()
        assert s.get(TaskRow, "k").attempts == 4  # type: ignore[union-attr]
    with store.session() as s:  # a holder known to be dead is replaced at once
        assert not claim("d") and claim("d", steal_from="c")


def test_the_leader_lease_is_swapped_by_version(store: Store) -> None:
    with store.session() as s:
        assert leases.swap(s, "controller", "a", 5, None, acquired=True)
    with store.session() as s:
        assert not leases.swap(s, "controller", "b", 5, None, acquired=True)  # exists already
        row = leases.read(s, "controller")
        assert row is not None and (row.holder, row.version) == ("a", 1)
        assert leases.swap(s, "controller", "a", 5, 1, acquired=False)  # a renews
        assert not leases.swap(s, "controller", "b", 5, 1, acquired=True)  # b saw an old version
        assert leases.swap(s, "controller", "b", 5, 2, acquired=True)
    with store.session() as s:
        row = leases.read(s, "controller")
        assert row is not None and (row.holder, row.version) == ("b", 3)


def test_model_versions_are_unique(store: Store) -> None:
    from sqlalchemy.exc import IntegrityError

    def add(version: int, key: str) -> None:
        with store.session() as s:
            s.add(
                ModelVersionRow(
                    project="default",
                    model="m",
                    version=version,
                    flavor="sklearn",
                    path="m.joblib",
                    files={},
                    metrics={},
                    lineage={},
                    signature={},
                    source_key=key,
                )
            )

    add(1, "a")
    with pytest.raises(IntegrityError):
        add(1, "b")
    with pytest.raises(IntegrityError):
        add(2, "a")
    with store.session() as s:
        assert model_versions.next_version(s, "default", "m") == 2
        model_versions.set_alias(s, "default", "m", "prod", 1)
    with store.session() as s:
        assert model_versions.aliases(s, "default", "m") == {"prod": 1}
