"""Which Ray nodes did a step's work: per-node records for the summary, the nodes lost
while it ran, and the resources the parts wait for."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tasks.cluster.options import RayOptions

if TYPE_CHECKING:
    from tasks.cluster.mapping import Done


def missing_resources(scheduling: RayOptions | None) -> list[str]:
    """Custom resources the scheduling asks for that no live node offers right now.

    Parts asking for them wait until a node with them joins (an autoscaler may add
    one), so the stage says so instead of looking stuck.
    """
    import ray

    wanted = (scheduling.resources or {}) if scheduling else {}
    offered: set[str] = set()
    for node in ray.nodes():
        if node.get("Alive"):
            offered.update(node.get("Resources", {}))
    return sorted(name for name in wanted if name not in offered)


def node_type(resources: dict[str, float]) -> str:
    """A node's type as its custom resources name it (``Intel``, ``Graviton``), else "default"."""
    builtin = ("CPU", "GPU", "memory", "object_store_memory", "node:", "accelerator_type:")
    custom = sorted(r for r in resources if not r.startswith(builtin))
    return "+".join(custom) or "default"


def execution_summary(
    parts: list[Done], sizes: list[tuple[int, int]], book: NodeBook | None = None
) -> dict[str, Any]:
    """Per node: its type, CPUs, and the parts, rows, bytes and task seconds it did; the
    parts that ran more than once and the nodes lost while the stage ran.

    ``sizes`` holds (rows, bytes) for each part; ``book`` what the run saw of the nodes.
    """
    known = (book or NodeBook()).look()
    nodes: dict[str, dict[str, Any]] = {}
    for part, (rows, size) in zip(parts, sizes, strict=True):
        node = nodes.get(part.node_id)
        if node is None:
            facts = _node_facts(part.node_id, known)
            node = nodes[part.node_id] = {**facts, "parts": 0, "rows": 0, "bytes": 0}
            node["task_seconds"] = 0.0
        node["parts"] += 1
        node["rows"] += rows
        node["bytes"] += size
        node["task_seconds"] = round(node["task_seconds"] + part.seconds, 3)
    redone = [
        {"part": index, "attempts": len(part.attempts), "nodes": list(part.attempts)}
        for index, part in enumerate(parts)
        if len(part.attempts) > 1
    ]
    tried = {node_id for part in parts for node_id in part.attempts}
    lost = [
        {
            **_node_facts(node_id, known),
            "parts_redone": sum(1 for r in redone if node_id in r["nodes"][:-1]),
        }
        for node_id in sorted(tried)
        if not known.get(node_id, {}).get("Alive", False)
    ]
    return {"nodes": list(nodes.values()), "redone_parts": redone, "lost_nodes": lost}


class NodeBook:
    """What one step run has seen of each node: Ray forgets a dead node's resources, so
    a node lost mid-run is described as it was when last seen alive."""

    def __init__(self) -> None:
        self.seen: dict[str, dict[str, Any]] = {}

    def look(self) -> dict[str, dict[str, Any]]:
        """Every node Ray knows now, alive or dead, with the resources it had when this
        book last saw it alive."""
        import ray

        known = {}
        for node in ray.nodes():
            if node.get("Alive"):
                self.seen[node["NodeID"]] = node
                known[node["NodeID"]] = node
            else:
                known[node["NodeID"]] = {**self.seen.get(node["NodeID"], node), "Alive": False}
        return known


def _node_facts(node_id: str, known: dict[str, dict[str, Any]]) -> dict[str, Any]:
    info = known.get(node_id, {})
    resources = info.get("Resources", {})
    return {
        "node_id": node_id,
        "address": info.get("NodeManagerAddress"),
        "type": node_type(resources),
        "cpus": resources.get("CPU", 0),
        "object_store_bytes": int(resources.get("object_store_memory", 0)),
    }
