"""Compile models ahead of serving: ``python -m dockyard.serving.compile PATH [PATH …]``.

Compiles each model given (or, for a directory that is not one model, every scikit-learn
model file under it) into the compile cache (``runtimes/compiled.py``), so that the first
server start is as fast as every later one; serving images run it at build time. Models that
have no compiled form are reported and left alone (they are served as they are); exit status
1 only when a path cannot be read as a model at all.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dockyard.serving.runtimes.compiled import cache_dir
from dockyard.serving.runtimes.registry import detect
from dockyard.serving.runtimes.sklearn import SUFFIXES, SklearnRuntime
from dockyard.serving.settings import ModelSettings, SettingsError, load_settings


def compile_path(path: Path) -> list[str]:
    """Lines saying what happened to the model at ``path`` (or to each one found under it)."""
    settings = load_settings(path)
    try:
        runtime = detect(path, settings)
    except SettingsError:
        found = sorted(p for p in path.rglob("*") if p.suffix in SUFFIXES) if path.is_dir() else []
        if not found:
            raise
        return [line for file in found for line in compile_path(file)]
    return [_compile(path, settings, runtime)]


def _compile(path: Path, settings: ModelSettings, runtime: str) -> str:
    if runtime != "sklearn":
        return f"{path}: {runtime} model, nothing to compile"
    model = SklearnRuntime(path, settings)
    if model.compiled is None:
        return f"{path}: {model.info['class']} has no compiled form; served with scikit-learn"
    if model.compiled.prefix is not None:
        return f"{path}: {model.info['class']} compiled, but its preprocessing is not cacheable"
    if model.from_cache:
        return f"{path}: {model.info['class']} already compiled in {cache_dir()}"
    if model.cache_file is None:
        raise OSError(f"{model.info['class']} compiled, but {cache_dir()} is not writable")
    return f"{path}: {model.info['class']} compiled into {model.cache_file}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dockyard.serving.compile")
    parser.add_argument("paths", nargs="+", type=Path, help="model files or directories")
    args = parser.parse_args(argv)
    if cache_dir() is None:
        print("the compile cache is off (DOCKYARD_COMPILE_CACHE=off): nothing to do")
        return 0
    failed = False
    for path in args.paths:
        try:
            print(*compile_path(path), sep="\n", flush=True)
        except (SettingsError, OSError) as exc:
            print(f"{path}: {exc}", file=sys.stderr)
            failed = True
        except Exception as exc:  # an unreadable pickle: say which file and why
            print(f"{path}: cannot load: {type(exc).__name__}: {exc}", file=sys.stderr)
            failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
