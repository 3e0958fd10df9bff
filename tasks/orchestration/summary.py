"""What a stage run did, as the rows of the tables people read in the Prefect UI.

Pure functions of a stage's manifest and a few facts about the run; publishing them as
Prefect artifacts is ``tasks.orchestration.tasks``' job.
"""

from __future__ import annotations

from typing import Any

MB = 1e6


def _rate(size: int, seconds: float) -> float | None:
    return round(size / MB / seconds, 1) if seconds > 0 else None


def stage_summary(
    stage: str,
    manifest: dict[str, Any],
    *,
    output_uri: str,
    seconds: float,
    retries: int,
    spilled_bytes: int | None,
    extra: list[tuple[str, Any]] = (),
) -> list[dict[str, Any]]:
    """Metric/value rows: rows, bytes and files in and out, time, speed, retries, Ray,
    and the step's own ``extra`` rows."""
    inputs = manifest.get("inputs") or {}
    stats = manifest.get("stats") or {}
    execution = manifest.get("execution") or {}
    nodes = execution.get("nodes", [])
    text_bytes = stats.get("text_bytes", 0)
    rows: list[tuple[str, Any]] = [
        ("stage", stage),
        ("output", output_uri),
        ("rows in", inputs.get("num_rows")),
        ("rows out", manifest["num_rows"]),
        ("bytes in", inputs.get("size_bytes")),
        ("bytes out", manifest["size_bytes"]),
        ("files in", inputs.get("num_files")),
        ("files out", len(manifest["files"])),
        ("seconds", round(seconds, 2)),
        ("text MB/s", _rate(text_bytes, seconds)),
        ("retries", retries),
        ("Ray nodes", len(nodes)),
        ("Ray CPUs", sum(n["cpus"] for n in nodes)),
    ]
    rows += extra
    if spilled_bytes:
        rows.append(("object store spilled bytes", spilled_bytes))
    for lost in execution.get("lost_nodes", []):
        rows.append(
            (
                "Ray node lost",
                f"{lost['node_id']} ({lost['type']} at {lost['address']}): "
                f"{lost['parts_redone']} parts redone elsewhere",
            )
        )
    if redone := execution.get("redone_parts"):
        rows.append(("parts redone", ", ".join(f"part {r['part']}" for r in redone)))
    # Rows that do not apply (no input for generate) are left out, not shown as blanks.
    return [{"metric": name, "value": value} for name, value in rows if value is not None]


def node_table(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """Per node type: nodes, parts, rows, text MB and MB per task-second (the seed's comparison)."""
    by_type: dict[str, dict[str, Any]] = {}
    for node in (manifest.get("execution") or {}).get("nodes", []):
        row = by_type.setdefault(
            node["type"],
            {
                "node type": node["type"],
                "nodes": 0,
                "CPUs": 0,
                "parts": 0,
                "rows": 0,
                "text MB": 0.0,
            },
        )
        row["nodes"] += 1
        row["CPUs"] += node["cpus"]
        row["parts"] += node["parts"]
        row["rows"] += node["rows"]
        row["text MB"] += node["bytes"] / MB
        row["_seconds"] = row.get("_seconds", 0.0) + node["task_seconds"]
    table = []
    for row in by_type.values():
        seconds = row.pop("_seconds")
        row["MB/s per task"] = round(row["text MB"] / seconds, 1) if seconds > 0 else "n/a"
        row["text MB"] = round(row["text MB"], 1)
        table.append(row)
    return table
