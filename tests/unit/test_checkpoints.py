"""Checkpoints that resume: the protocol's helper, and what is left before an attempt starts.

``dockyard.data.checkpoints.select`` is pure; ``prune`` runs it on a real directory through
``Inside`` (a link a workload planted is removed, never followed).
"""

from __future__ import annotations

import ast
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from dockyard import checkpoints
from dockyard.data.checkpoints import Entry, prune, scan, select
from dockyard.errors import InvalidSpec
from dockyard.paths import Inside
from dockyard.spec.jobs import CheckpointPolicy
from dockyard.spec.loader import validate_data


def checkpoint(root: Path, name: str, complete: bool = True, files: int = 1) -> Path:
    path = root / name
    path.mkdir(parents=True)
    for i in range(files):
        (path / f"part-{i}.bin").write_bytes(b"w" * 10)
    if complete:
        (path / checkpoints.MARKER).write_bytes(b"")
    return path


def names(root: Path) -> list[str]:
    return sorted(os.listdir(root))


# -- select (pure) ------------------------------------------------------------------------
def test_a_half_written_checkpoint_is_never_offered_and_goes() -> None:
    entries = [Entry("epoch-0001", "dir", True), Entry("epoch-0002", "dir", False)]
    pruning = select(entries, keep=2)
    assert pruning.latest == "epoch-0001"
    assert pruning.kept == ("epoch-0001",) and pruning.remove == ("epoch-0002",)


def test_nothing_complete_offers_nothing() -> None:
    pruning = select([Entry("epoch-0001", "dir", False), Entry(".tmp-x", "dir", True)], keep=2)
    assert pruning.latest is None and pruning.kept == ()
    assert pruning.remove == (".tmp-x", "epoch-0001")  # a hidden name is never a checkpoint


def test_the_newest_keep_complete_ones_stay() -> None:
    entries = [Entry(f"epoch-{i:04d}", "dir", True) for i in (3, 1, 4, 2, 5)]
    pruning = select(entries, keep=2)
    assert pruning.kept == ("epoch-0004", "epoch-0005") and pruning.latest == "epoch-0005"
    assert pruning.remove == ("epoch-0001", "epoch-0002", "epoch-0003")
    assert select(entries, keep=1000).remove == ()


def test_links_and_special_files_go_plain_files_stay() -> None:
    entries = [
        Entry("epoch-0009", "link"),
        Entry("fifo", "other"),
        Entry("notes.txt", "file"),
        Entry("epoch-0001", "dir", True),
    ]
    pruning = select(entries, keep=2)
    assert pruning.latest == "epoch-0001"
    assert pruning.remove == ("epoch-0009", "fifo")


# -- prune (through Inside, on a real directory) -----------------------------------------------
@pytest.fixture
def volume(tmp_path: Path) -> Path:
    root = tmp_path / "volume"
    (root / "checkpoints" / "job" / "g1").mkdir(parents=True)
    return root


REL = "checkpoints/job/g1"


def test_prune_keeps_the_newest_complete_and_removes_half_written(volume: Path) -> None:
    ckpt = volume / REL
    for i in range(1, 5):
        checkpoint(ckpt, f"epoch-{i:04d}")
    checkpoint(ckpt, "epoch-0005", complete=False)  # the attempt died while writing it
    (ckpt / "notes.txt").write_text("mine")
    pruning = prune(Inside(volume), REL, keep=2)
    assert pruning.latest == "epoch-0004" and pruning.failed == ()
    assert names(ckpt) == ["epoch-0003", "epoch-0004", "notes.txt"]
    assert names(ckpt / "epoch-0004") == [".complete", "part-0.bin"]


def test_a_marker_without_files_is_complete_and_a_marker_that_is_no_file_is_not(
    volume: Path,
) -> None:
    ckpt = volume / REL
    checkpoint(ckpt, "epoch-0001", files=0)  # only the marker: the marker is the contract
    checkpoint(ckpt, "epoch-0002", complete=False)
    (ckpt / "epoch-0002" / checkpoints.MARKER).mkdir()  # a directory named like the marker
    checkpoint(ckpt, "epoch-0003", complete=False)
    os.symlink(ckpt / "epoch-0001" / checkpoints.MARKER, ckpt / "epoch-0003" / ".complete")
    (ckpt / "epoch-0004.complete").write_bytes(b"")  # a marker beside, not inside: a plain file
    entries = {e.name: e for e in scan(Inside(volume), REL)}
    assert entries["epoch-0001"].complete
    assert not entries["epoch-0002"].complete and not entries["epoch-0003"].complete
    assert prune(Inside(volume), REL, keep=5).latest == "epoch-0001"
    assert names(ckpt) == ["epoch-0001", "epoch-0004.complete"]
    assert checkpoints.latest(ckpt) == ckpt / "epoch-0001"


def test_a_link_planted_as_a_checkpoint_is_removed_not_followed(
    volume: Path, tmp_path: Path
) -> None:
    ckpt = volume / REL
    outside = checkpoint(tmp_path / "outside", "epoch-9999")  # complete, and newer by name
    checkpoint(ckpt, "epoch-0001")
    os.symlink(outside, ckpt / "epoch-9999")
    os.symlink(tmp_path / "outside", ckpt / "epoch-9998")
    assert checkpoints.latest(ckpt) == ckpt / "epoch-0001"  # the helper skips links too
    pruning = prune(Inside(volume), REL, keep=2)
    assert pruning.latest == "epoch-0001"
    assert names(ckpt) == ["epoch-0001"]
    assert names(outside) == [".complete", "part-0.bin"]  # what the link pointed at is intact


def test_a_fifo_is_removed_and_a_linked_checkpoint_directory_refused(
    volume: Path, tmp_path: Path
) -> None:
    from dockyard.errors import UnsafePath

    ckpt = volume / REL
    os.mkfifo(ckpt / "pipe")
    assert prune(Inside(volume), REL, keep=2).remove == ("pipe",)
    assert names(ckpt) == []
    (volume / "checkpoints" / "other").symlink_to(tmp_path)
    with pytest.raises(UnsafePath):
        prune(Inside(volume), "checkpoints/other/g1", keep=2)


class Stuck(Inside):
    """A directory whose entry ``epoch-0002`` cannot be removed (e.g. written by a
    container's user, which the server may not unlink)."""

    def remove(self, rel: str) -> None:
        if rel.endswith("/epoch-0002"):
            raise PermissionError(13, "Permission denied", rel)
        super().remove(rel)


def test_what_cannot_be_removed_is_reported_and_never_offered(volume: Path) -> None:
    ckpt = volume / REL
    checkpoint(ckpt, "epoch-0001")
    checkpoint(ckpt, "epoch-0002", complete=False)
    checkpoint(ckpt, "epoch-0003", complete=False)
    pruning = prune(Stuck(volume), REL, keep=2)
    assert pruning.latest == "epoch-0001" and pruning.failed == ("epoch-0002",)
    assert names(ckpt) == ["epoch-0001", "epoch-0002"]


# -- the helper a workload may use -------------------------------------------------------------
def test_save_renames_a_complete_checkpoint_into_place(tmp_path: Path) -> None:
    ckpt = tmp_path / "ckpt"
    assert checkpoints.latest(ckpt) is None  # not even there yet
    with checkpoints.save(ckpt, "epoch-0001") as tmp:
        (tmp / "state.bin").write_bytes(b"1")
        assert checkpoints.latest(ckpt) is None  # not before the block ends
        assert tmp.name.startswith(".tmp-epoch-0001-")
    assert checkpoints.latest(ckpt) == ckpt / "epoch-0001"
    assert names(ckpt / "epoch-0001") == [".complete", "state.bin"]
    with checkpoints.save(ckpt, "epoch-0001") as tmp:  # the same name again: replaced whole
        (tmp / "other.bin").write_bytes(b"2")
    assert names(ckpt) == ["epoch-0001"]
    assert names(ckpt / "epoch-0001") == [".complete", "other.bin"]


def test_save_that_raises_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), checkpoints.save(tmp_path, "epoch-0002") as tmp:
        (tmp / "state.bin").write_bytes(b"half")
        raise RuntimeError("killed")
    assert names(tmp_path) == []
    with (
        pytest.raises(ValueError, match="not a checkpoint name"),
        checkpoints.save(tmp_path, "../escape"),
    ):
        pass


def test_save_with_keep_and_mark_complete_in_place(tmp_path: Path) -> None:
    for i in range(1, 5):
        with checkpoints.save(tmp_path, f"step-{i:06d}", keep=2) as tmp:
            (tmp / "w").write_bytes(bytes([i]))
    assert names(tmp_path) == ["step-000003", "step-000004"]
    in_place = checkpoint(tmp_path, "step-000005", complete=False)
    assert checkpoints.latest(tmp_path) == tmp_path / "step-000004"
    checkpoints.mark_complete(in_place)
    assert checkpoints.latest(tmp_path) == in_place
    assert [p.name for p in checkpoints.completed(tmp_path)] == [
        "step-000003",
        "step-000004",
        "step-000005",
    ]


def test_the_helper_needs_only_the_standard_library() -> None:
    tree = ast.parse(Path(checkpoints.__file__).read_text())
    imported = {
        (node.module or "") if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    roots = {name.split(".")[0] for name in imported}
    assert roots <= set(sys.stdlib_module_names) | {"__future__"}, roots


# -- the plan ---------------------------------------------------------------------------------
def test_an_attempt_is_told_how_often_and_prunes_before_it_starts() -> None:
    from datetime import UTC, datetime

    from dockyard.control import jobs
    from dockyard.control.plan import MakeDirs, PruneCheckpoints
    from dockyard.control.workloads import STEP_REASON, Inputs
    from dockyard.spec import JobSpec

    where = (Path("/v/ckpt"), "checkpoints/train/g1")
    steps = (MakeDirs((where,)), PruneCheckpoints(where, 3))
    env = {checkpoints.EVERY_ENV: "5", checkpoints.KEEP_ENV: "3"}
    spec = JobSpec.model_validate({"command": ["x"], "env": {"SEED": "1"}})
    obs = jobs.Observed(
        1, (), datetime(2024, 5, 1, tzinfo=UTC), inputs=Inputs(steps=steps, env=env)
    )
    start = jobs.plan(spec, obs).starts[0]
    assert start.steps == steps
    assert start.request.env[checkpoints.EVERY_ENV] == "5"
    assert start.request.env[checkpoints.KEEP_ENV] == "3" and start.request.env["SEED"] == "1"
    assert checkpoints.LATEST_ENV not in start.request.env  # known only once pruned, at start
    assert STEP_REASON[PruneCheckpoints] == "StartFailed"


# -- the spec ---------------------------------------------------------------------------------
def job(checkpoint: dict[str, Any]) -> dict[str, Any]:
    spec = {"command": ["x"], "checkpoint": {"volume": "c", **checkpoint}}
    return {"apiVersion": "dockyard.dev/v1", "kind": "Job", "metadata": {"name": "a"}, "spec": spec}


def test_every_and_keep_defaults_and_bounds() -> None:
    policy = CheckpointPolicy.model_validate({"volume": "c"})
    assert (policy.every, policy.keep) == (None, 2)
    parsed = validate_data(job({"every": 5, "keep": 1000}), "req")
    assert parsed.spec.checkpoint.every == 5  # type: ignore[attr-defined]
    for field, value, says in [
        ("every", 0, "expected a number ≥ 1"),
        ("every", 1_000_001, "expected a number ≤ 1000000"),
        ("every", 10**400, "expected a number ≤ 1000000"),
        ("keep", 0, "expected a number ≥ 1"),
        ("keep", 1001, "expected a number ≤ 1000"),
    ]:
        with pytest.raises(InvalidSpec) as info:
            validate_data(job({field: value}), "req")
        [error] = info.value.details["errors"]
        assert error["path"] == f"spec.checkpoint.{field}"
        assert error["message"].startswith(says), error
    fields = CheckpointPolicy.model_fields
    assert "1,000,000" in str(fields["every"].description)
    assert "1,000" in str(fields["keep"].description)
