"""tasks/cluster/internals.py, the one module that uses private APIs of Ray, Prefect or prefect-ray:
each private name still exists and still works on a real Ray, or the test says which one
changed; and no other module uses one."""

from __future__ import annotations

import copy
import importlib
import logging
import re
from pathlib import Path

import pytest
import ray
import yaml

from tasks.cluster import internals
from tasks.cluster.internals import PrivateApiChanged

ROOT = Path(__file__).resolve().parents[2]
CHECKED_DIRS = ("tasks", "flows", "deployments", "benchmarks", "tests")
# A private module or name of Ray, Prefect or prefect-ray: a dotted path with a part that
# starts with "_" (the autoscaler's, Prefect's internals...), or a "_name" imported from one.
PRIVATE_USE = re.compile(
    r"\b(?:ray|prefect|prefect_ray)(?:\.\w+)*\._[A-Za-z]"
    r"|^\s*from\s+(?:ray|prefect|prefect_ray)[\w.]*\s+import\s+.*\b_[A-Za-z]",
    re.MULTILINE,
)


def _named(start: str) -> tuple[str, str]:
    """The one (module, name) entry of PRIVATE_NAMES whose name starts with ``start``."""
    (entry,) = [(m, n) for m, n in internals.PRIVATE_NAMES if n.startswith(start)]
    return entry


def _resolved(module: str, name: str):
    try:
        return internals.private(module, name)
    except PrivateApiChanged as exc:
        pytest.fail(str(exc))


@pytest.mark.parametrize(
    ("module", "name"),
    internals.PRIVATE_NAMES,
    ids=[f"{m}.{n}" for m, n in internals.PRIVATE_NAMES],
)
def test_listed_name_still_exists(module, name):
    assert callable(_resolved(module, name)), f"{module}.{name} is no longer a function"


def test_no_other_module_uses_an_unpublished_api():
    found = []
    for directory in CHECKED_DIRS:
        for path in sorted((ROOT / directory).rglob("*.py")):
            if path == ROOT / "tasks" / "cluster" / "internals.py":
                continue
            text = path.read_text()
            for match in PRIVATE_USE.finditer(text):
                line = text[: match.start()].count("\n") + 1
                found.append(f"{path.relative_to(ROOT)}:{line}: {match.group().strip()}")
    where = "tasks/cluster/internals.py"
    assert not found, f"private APIs used outside {where} (move them there):\n" + "\n".join(found)


def _report(name: str) -> tuple[object, list[str]]:
    """``internals.<name>()`` and the warnings it logged, in whichever process runs it."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append
    logger = logging.getLogger(internals.__name__)
    logger.addHandler(handler)
    try:
        value = getattr(internals, name)()
    finally:
        logger.removeHandler(handler)
    return value, [r.getMessage() for r in records]


def _reports_here_and_in_a_worker(name: str) -> list[object]:
    """The report from the driver and from a Ray worker (where the stages call it);
    fails with the warnings if either logged any."""
    here = _report(name)
    there = ray.get(ray.remote(num_cpus=0)(_report).remote(name))
    for where, (_, warnings) in (("driver", here), ("Ray worker", there)):
        assert not warnings, f"{name}() in a {where} warned: " + "; ".join(warnings)
    return [here[0], there[0]]


def test_spilled_bytes_on_a_real_ray(ray_cluster):
    gcs_address = ray.get_runtime_context().gcs_address
    try:
        strict = internals.cluster_spilled_bytes(gcs_address)
    except PrivateApiChanged as exc:
        pytest.fail(str(exc))
    assert isinstance(strict, int) and strict >= 0
    for value in _reports_here_and_in_a_worker("spilled_bytes"):
        assert isinstance(value, int) and value >= strict  # a running total


def test_dashboard_url_is_what_the_cluster_publishes(ray_cluster):
    # ray.init()'s context is right in the driver that started the cluster (this one).
    published = ray_cluster.dashboard_url
    expected = f"http://{published}" if published else None
    for value in _reports_here_and_in_a_worker("dashboard_url"):
        assert value == expected


def test_a_vanished_name_fails_clearly(monkeypatch):
    module, name = _named("get_memory_info_reply")
    version = ray.__version__

    monkeypatch.setattr(internals, "PRIVATE_NAMES", (*internals.PRIVATE_NAMES, (module, "nope")))
    with pytest.raises(PrivateApiChanged) as gone:
        internals.private(module, "nope")
    update = "update tasks/cluster/internals.py"
    assert str(gone.value) == f"{module}.nope is gone in ray {version}: {update}"

    monkeypatch.setattr(
        internals, "PRIVATE_NAMES", (*internals.PRIVATE_NAMES, (f"{module}_moved", name))
    )
    with pytest.raises(PrivateApiChanged, match=rf"{module}_moved\.{name} cannot be imported"):
        internals.private(f"{module}_moved", name)

    with pytest.raises(ValueError, match="not in PRIVATE_NAMES"):
        internals.private(module, "unlisted")


def test_a_changed_signature_fails_clearly(monkeypatch):
    module, name = _named("get_state_from_address")
    monkeypatch.setattr(importlib.import_module(module), name, lambda: None)
    with pytest.raises(PrivateApiChanged, match=rf"{module}\.{name} no longer takes 1 argument"):
        internals.cluster_spilled_bytes("127.0.0.1:1")


@pytest.mark.parametrize(
    ("report", "module", "name"),
    [
        ("spilled_bytes", *_named("get_memory_info_reply")),
        ("dashboard_url", *_named("get_webui_url")),
    ],
)
def test_a_report_degrades_to_none_with_a_warning_naming_what_broke(
    ray_cluster, monkeypatch, report, module, name
):
    monkeypatch.delattr(importlib.import_module(module), name)
    value, warnings = _report(report)
    assert value is None
    assert len(warnings) == 1
    assert f"{module}.{name} is gone in ray {ray.__version__}" in warnings[0]


def test_cluster_configs_are_validated_as_ray_up_does():
    aws = yaml.safe_load((ROOT / "deployments" / "ray" / "aws.yaml").read_text())
    assert internals.validate_cluster_config(copy.deepcopy(aws))["head_node_type"] == "head"
    with pytest.raises(ValueError, match="head_node_type"):
        internals.validate_cluster_config({**copy.deepcopy(aws), "head_node_type": "nowhere"})
    with pytest.raises(Exception, match="no_such_field"):  # jsonschema's ValidationError
        internals.validate_cluster_config({**copy.deepcopy(aws), "no_such_field": 1})
