"""Snapshot benchmark: Dockyard's snapshot store side by side with restic and borg.

    .venv/bin/python bench/data.py [--size-mib 1024] [--small 5000] [--runs 3]

The volume: one large file (random bytes, like model weights) and SMALL small files (text,
like CSV shards and configs) — SIZE_MIB in all. For each tool, in a fresh repository:
  1. the first snapshot of the volume;
  2. an incremental snapshot after 1 % of the bytes changed: a region of the large file
     rewritten in place, 1 % of the small files rewritten, a few new files;
  3. a restore of the latest snapshot into an empty directory (throughput: the volume's
     bytes over the restore's wall time);
  4. the repository's size (apparent bytes of its files) after both snapshots.
Every tool reads the same files from a warm page cache, on the same disk, one after the
other; each run starts from a new copy of the data. Medians over RUNS runs are reported.
restic (Debian's 0.14) always encrypts (repository v2, zstd "auto" compression); borg
(1.2) runs unencrypted with its default lz4; Dockyard's local store is unencrypted, zstd
level 3 (backups to S3 are sealed when a passphrase is set). restic and borg are skipped
when not installed (apt-get install restic borgbackup).
Results print as Markdown and are saved under bench/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
from dockyard.data.snapshots import SnapshotStore  # noqa: E402

MiB = 1024 * 1024


def make_volume(root: Path, size_mib: int, small: int, seed: int) -> int:
    rng = random.Random(seed)
    root.mkdir(parents=True)
    small_total = 0
    words = [f"{w},{rng.random():.6f}" for w in range(2000)]
    for i in range(small):
        folder = root / "shards" / f"{i % 100:02}"
        folder.mkdir(parents=True, exist_ok=True)
        n = rng.randint(2, 60) * 1024
        text = "\n".join(rng.choice(words) for _ in range(n // 12)).encode()[:n]
        (folder / f"part-{i:05}.csv").write_bytes(text)
        small_total += len(text)
    large = max(size_mib * MiB - small_total, MiB)
    with open(root / "model.bin", "wb") as fh:
        for _ in range(large // (16 * MiB)):
            fh.write(os.urandom(16 * MiB))
        fh.write(os.urandom(large % (16 * MiB)))
    return small_total + large


def change_one_percent(root: Path, total: int, seed: int) -> int:
    """Change about 1 % of the volume's bytes; the bytes changed."""
    rng = random.Random(seed + 1)
    budget = total // 100
    changed = 0
    shards = sorted((root / "shards").rglob("*.csv"))
    for path in rng.sample(shards, max(1, len(shards) // 100)):
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2] + b"\nchanged\n" + data[len(data) // 2 :])
        changed += len(data)
    new = 2 * MiB
    (root / "shards" / "new-1.csv").write_bytes(os.urandom(new))
    changed += new
    region = max(budget - changed, MiB)
    with open(root / "model.bin", "r+b") as fh:
        fh.seek((root / "model.bin").stat().st_size // 3)
        fh.write(os.urandom(region))
    return changed + region


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def run(argv: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> None:
    subprocess.run(
        argv, check=True, capture_output=True, env={**os.environ, **(env or {})}, cwd=cwd
    )


class Dockyard:
    name = "dockyard"

    def __init__(self, repo: Path) -> None:
        self.store = SnapshotStore(repo)
        self.repo = repo

    def init(self) -> None:
        pass

    def snapshot(self, source: Path) -> None:
        self.store.snapshot(source, "bench/volume")

    def restore(self, target: Path) -> None:
        self.store.restore("bench/volume", self.store.ids("bench/volume")[-1], target)


class Restic:
    name = "restic 0.14"
    env = {"RESTIC_PASSWORD": "bench", "RESTIC_CACHE_DIR": ""}

    def __init__(self, repo: Path) -> None:
        self.repo = repo
        self.env = {**Restic.env, "RESTIC_REPOSITORY": str(repo)}
        self.env["RESTIC_CACHE_DIR"] = str(repo.parent / "restic-cache")

    def init(self) -> None:
        run(["restic", "init", "--repository-version", "2"], self.env)

    def snapshot(self, source: Path) -> None:
        run(["restic", "backup", "--quiet", "."], self.env, cwd=source)

    def restore(self, target: Path) -> None:
        run(["restic", "restore", "latest", "--target", str(target)], self.env)


class Borg:
    name = "borg 1.2"

    def __init__(self, repo: Path) -> None:
        self.repo = repo
        self.env = {
            "BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK": "yes",
            "BORG_BASE_DIR": str(repo.parent / "borg-base"),
        }
        self.n = 0

    def init(self) -> None:
        run(["borg", "init", "--encryption", "none", str(self.repo)], self.env)

    def snapshot(self, source: Path) -> None:
        self.n += 1
        run(["borg", "create", f"{self.repo}::s{self.n}", "."], self.env, cwd=source)

    def restore(self, target: Path) -> None:
        target.mkdir(parents=True)
        run(["borg", "extract", f"{self.repo}::s{self.n}"], self.env, cwd=target)


def one_run(tool_cls: type, work: Path, size_mib: int, small: int, seed: int) -> dict[str, float]:
    data = work / "volume"
    total = make_volume(data, size_mib, small, seed)
    repo = work / "repo"
    tool = tool_cls(repo)
    tool.init()
    first = timed(lambda: tool.snapshot(data))
    time.sleep(0.2)  # the changed files' mtimes are older than the settle window
    changed = change_one_percent(data, total, seed)
    time.sleep(0.2)
    incremental = timed(lambda: tool.snapshot(data))
    restore = timed(lambda: tool.restore(work / "restored"))
    size = du(repo)
    return {
        "bytes": total,
        "changed": changed,
        "first_s": first,
        "incremental_s": incremental,
        "restore_s": restore,
        "restore_mib_s": total / MiB / restore,
        "stored_bytes": size,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--small", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--work", type=Path, default=None, help="scratch directory (a disk)")
    args = parser.parse_args()
    tools: list[type] = [Dockyard]
    tools += [t for t, b in ((Restic, "restic"), (Borg, "borg")) if shutil.which(b)]
    results: dict[str, list[dict[str, float]]] = {t.name: [] for t in tools}
    for i in range(args.runs):
        for tool in tools:
            with tempfile.TemporaryDirectory(dir=args.work, prefix="bench-data-") as tmp:
                r = one_run(tool, Path(tmp), args.size_mib, args.small, seed=i)
                results[tool.name].append(r)
                shown = json.dumps({k: round(v, 3) for k, v in r.items()})
                print(f"run {i + 1} {tool.name}: {shown}")
    rows = []
    for name, runs in results.items():
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        rows.append((name, med))
    total = rows[0][1]["bytes"]
    changed = rows[0][1]["changed"]
    print(
        f"\n{total / MiB:.0f} MiB volume (1 file + {args.small} small), "
        f"{changed / MiB:.1f} MiB changed; medians of {args.runs} runs\n"
    )
    print("| tool | first snapshot | incremental (1 %) | restore | restore MiB/s | stored |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, m in rows:
        print(
            f"| {name} | {m['first_s']:.2f} s | {m['incremental_s']:.2f} s | "
            f"{m['restore_s']:.2f} s | {m['restore_mib_s']:.0f} | "
            f"{m['stored_bytes'] / MiB:.0f} MiB |"
        )
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"data-{int(time.time())}.json"
    path.write_text(json.dumps({"args": vars(args) | {"work": str(args.work)}, "results": results}))
    print(f"\nsaved {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
