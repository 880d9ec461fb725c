"""What changed between two reads of the store, and which resources must be planned again.

A resource whose last plan did nothing stays settled until something it depends on changes
(``control/loop.py``). This module says what that is, from the references the specs declare
(``SpecModel.references``/``produces``), so that a change to one job of a thousand plans that
job and its neighbours, not the thousand:

- the resource that changed (its row, one of its workloads or tasks);
- every resource that names it, directly or through others (a Volume changed: the Datasets
  on it and the Jobs that mount those Datasets), since plans read what they name;
- what it names, one step (a Job's workload ended: the Volume it mounted may now be deleted;
  the Model it produces);
- for a changed registry entry (a version, an alias), the Model of that name and what names it;
- when a resource came, went or changed its spec: the project's Environments (they prepare
  every runtime the project's resources name).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from dockyard.control.records import ResourceRecord

Key = tuple[str, str, str]  # (kind, project, name)


@dataclass
class Changes:
    uids: set[str] = field(default_factory=set)  # rows, workloads or tasks of these changed
    reshaped: list[ResourceRecord] = field(default_factory=list)  # came or changed spec
    gone: list[ResourceRecord] = field(default_factory=list)  # no longer in the store
    models: set[tuple[str, str]] = field(default_factory=set)  # (project, model) registry
    affected: set[str] = field(default_factory=set)  # uids to plan again

    def __bool__(self) -> bool:
        return bool(self.uids or self.models)


def _key(row: ResourceRecord) -> Key:
    return (row.kind, row.project, row.name)


def affected(
    rows: Mapping[Key, ResourceRecord],
    changes: Changes,
    names: Callable[[ResourceRecord], list[tuple[str, str]]],
) -> set[str]:
    """The uids of the resources to plan again; ``names(row)`` are the (kind, name) pairs its
    spec refers to, in its project (empty when it cannot be read)."""
    if not changes:
        return set()
    by_uid = {r.uid: r for r in rows.values()}
    names_of: dict[Key, list[Key]] = {}
    named_by: dict[Key, list[Key]] = defaultdict(list)
    for row in [*rows.values(), *changes.gone]:
        key = _key(row)
        names_of[key] = [(kind, row.project, name) for kind, name in names(row)]
        for target in names_of[key]:
            named_by[target].append(key)
    start: set[Key] = {_key(by_uid[u]) for u in changes.uids if u in by_uid}
    start |= {_key(r) for r in changes.gone}
    start |= {("Model", project, model) for project, model in changes.models}
    reached = set(start)
    for key in start:
        reached.update(names_of.get(key, ()))
    todo = list(start)
    while todo:  # everything that names what changed, however far up
        for parent in named_by.get(todo.pop(), ()):
            if parent not in reached:
                reached.add(parent)
                todo.append(parent)
    projects = {r.project for r in [*changes.reshaped, *changes.gone]}
    reached |= {k for k in rows if k[0] == "Environment" and k[1] in projects}
    return {rows[k].uid for k in reached if k in rows}
