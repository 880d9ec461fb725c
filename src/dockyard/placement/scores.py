"""How close a node is to the data a pod needs: pure functions, no I/O (docs/placement.md).

As STORK scores a node for a volume, by where the node is relative to the nodes that hold a
replica of it:

    level      STORK  extender  a node that …
    node         100        10  holds it
    rack          50         5  is in the rack of a holder (same zone and region)
    zone          25         2  is in the zone of a holder (same region)
    region        10         1  is in the region of a holder
    elsewhere      5         0  is anywhere else

A node's level for one need is the best over the nodes holding it. A pod with several needs:
the node's score is the **mean** of its levels over the needs that some node holds (STORK sums
per volume; the mean is that sum over the number of needs, so it keeps its order and stays in
one range). A need no node holds says nothing about any node and is left out. The mean is put
in the extender's range 0..``MAX_EXTENDER_PRIORITY`` (10) by ``score * 10 // 100`` (rounded
down): the five levels stay five distinct scores, 10 / 5 / 2 / 1 / 0.

Topology labels that are absent count as equal when both nodes lack them: two nodes without
region labels in zone ``a`` are in the same zone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from typing import NamedTuple

from dockyard.placement.labels import HOLDS, RACK, REGION, ZONE, Need

MAX_EXTENDER_PRIORITY = 10
"""The kube-scheduler's ``MaxExtenderPriority`` (k8s.io/kube-scheduler/extender/v1)."""

Labels = Mapping[str, str]


class Level(IntEnum):
    """STORK's scores for where a node is relative to the data."""

    NODE = 100
    RACK = 50
    ZONE = 25
    REGION = 10
    ELSEWHERE = 5


def extender_score(stork: int) -> int:
    """A STORK score (5..100) in the extender's range 0..10, rounded down."""
    return _scaled(stork, 1)


class Place(NamedTuple):
    """Where a node is: its name and its topology labels ('' when absent)."""

    node: str
    region: str = ""
    zone: str = ""
    rack: str = ""


def place_of(node: str, labels: Labels) -> Place:
    return Place(node, labels.get(REGION, ""), labels.get(ZONE, ""), labels.get(RACK, ""))


@dataclass
class Holders:
    """The nodes that hold one thing, and the racks, zones and regions they are in."""

    nodes: set[str] = field(default_factory=set)
    racks: set[tuple[str, str, str]] = field(default_factory=set)
    zones: set[tuple[str, str]] = field(default_factory=set)
    regions: set[str] = field(default_factory=set)

    def add(self, place: Place) -> None:
        node, region, zone, rack = place
        self.nodes.add(node)
        if rack:
            self.racks.add((region, zone, rack))
        if zone:
            self.zones.add((region, zone))
        if region:
            self.regions.add(region)

    def level(self, place: Place) -> Level:
        """The level of ``place`` for this thing (its best over the holders)."""
        if place.node in self.nodes:
            return Level.NODE
        return self.near(place.region, place.zone, place.rack)

    def near(self, region: str, zone: str, rack: str) -> Level:
        """The level of a node that does not hold it, at that region, zone and rack."""
        if rack and (region, zone, rack) in self.racks:
            return Level.RACK
        if zone and (region, zone) in self.zones:
            return Level.ZONE
        if region and region in self.regions:
            return Level.REGION
        return Level.ELSEWHERE

    def __bool__(self) -> bool:
        return bool(self.nodes)


def holders(label: str, places: Iterable[tuple[Place, Labels]]) -> Holders:
    """The holders of ``label`` among ``places`` (each node's place and labels)."""
    found = Holders()
    for place, labels in places:
        if labels.get(label) == HOLDS:
            found.add(place)
    return found


def node_score(levels: Iterable[Level]) -> int:
    """The extender score of a node from its level for each need held somewhere: the mean
    level in 0..10, rounded down."""
    values = list(levels)
    if not values:
        return 0
    return _scaled(sum(values), len(values))


def _scaled(total: int, count: int) -> int:
    return max(0, min(MAX_EXTENDER_PRIORITY, total * MAX_EXTENDER_PRIORITY // (100 * count)))


def scores(
    needs: Iterable[Need], candidates: Iterable[Place], held: Mapping[str, Holders]
) -> dict[str, int]:
    """The extender score of every candidate node for a pod with ``needs``; ``held``: the
    holders of each need's label (a need nobody holds is left out; none left: all 0).

    Nodes that hold none of the needs score by their rack, zone and region alone: that score
    is computed once per distinct (region, zone, rack), so a request costs a few dictionary
    lookups per node."""
    found = [held[n.label] for n in needs if held.get(n.label)]
    if not found:
        return {place.node: 0 for place in candidates}
    count = len(found)
    holding = set().union(*(h.nodes for h in found))
    by_topology: dict[tuple[str, ...], int] = {}
    out: dict[str, int] = {}
    for place in candidates:
        if place.node in holding:
            out[place.node] = _scaled(sum(h.level(place) for h in found), count)
            continue
        key = place[1:]
        score = by_topology.get(key)
        if score is None:
            total = sum(h.near(place.region, place.zone, place.rack) for h in found)
            score = by_topology[key] = _scaled(total, count)
        out[place.node] = score
    return out


def refusals(
    needs: Iterable[Need], candidates: Iterable[Place], held: Mapping[str, Holders]
) -> dict[str, str]:
    """The candidates that will not do for a pod, and why: those that lack a required need
    that some node holds (a need nobody holds refuses no node)."""
    rules = []
    for need in needs:
        found = held.get(need.label)
        if need.required and found:
            count = len(found.nodes)
            why = (
                f"does not hold {need.describe()}, which the pod requires (held by {count} "
                f"node{'' if count == 1 else 's'})"
            )
            rules.append((found.nodes, why))
    out: dict[str, str] = {}
    if rules:
        for place in candidates:
            for nodes, why in rules:
                if place.node not in nodes:
                    out[place.node] = why
                    break
    return out


@dataclass(frozen=True)
class Distance:
    """How far the data of one need is from a node: for a pod's status."""

    need: Need
    level: Level | None  # None: no node holds it
    nearest: tuple[str, ...]  # holders at that level (at most a few), when not this node

    def message(self, node: str) -> str:
        what = self.need.describe()
        if self.level is None:
            return f"{what} is on no node yet"
        if self.level is Level.NODE:
            return f"{what} is on {node}"
        where = {
            Level.RACK: "in the same rack",
            Level.ZONE: "in the same zone",
            Level.REGION: "in the same region",
            Level.ELSEWHERE: "elsewhere",
        }[self.level]
        return f"{what} is not on {node}: the nearest copy is {where} ({', '.join(self.nearest)})"


def distances(
    needs: Iterable[Need], node: str, nodes: Mapping[str, Labels], shown: int = 3
) -> list[Distance]:
    """Where each need's data is, seen from ``node`` (the node a pod landed on), among
    ``nodes`` (name → labels): what a status says when the data is elsewhere."""
    places = {name: place_of(name, labels) for name, labels in nodes.items()}
    here = places.get(node, Place(node))
    out = []
    for need in needs:
        label = need.label
        found = holders(label, ((places[n], labels) for n, labels in nodes.items()))
        if not found:
            out.append(Distance(need, None, ()))
            continue
        level = found.level(here)
        near = sorted(n for n in found.nodes if _one(places[n]).level(here) is level)
        out.append(Distance(need, level, () if level is Level.NODE else tuple(near[:shown])))
    return out


def _one(place: Place) -> Holders:
    single = Holders()
    single.add(place)
    return single
