"""Placement near the data: which node holds what (node labels), how close a node is to the
data a pod needs (STORK-like scores), and the kube-scheduler extender that applies both.

- ``labels``: the label and annotation scheme (what a node holds, what a pod needs, topology).
- ``scores``: pure scoring: same node 100, rack 50, zone 25, region 10, elsewhere 5.
- ``extender``: the scheduler-extender routes (``POST /placement/filter``, ``/prioritize``).
- ``nodes``: a cached node-label source for the extender.

See docs/placement.md.
"""
