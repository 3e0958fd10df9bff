"""deployments/ray/: the AWS launcher config passes Ray's own validation, and both
cluster configs describe the same x86 and Graviton node types, with token auth on."""

from __future__ import annotations

import json
import re
from importlib import metadata
from pathlib import Path

import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

RAY_DIR = Path(__file__).resolve().parents[1] / "deployments" / "ray"
AWS = yaml.safe_load((RAY_DIR / "aws.yaml").read_text())
KUBE = yaml.safe_load((RAY_DIR / "kuberay.yaml").read_text())
GRAVITON = re.compile(r"^[a-z]\d+g[a-z]*\.")  # m7g, c7gn, r8g, ...
WORKER_TYPES = {"intel": "Intel", "graviton": "Graviton"}


def test_aws_config_passes_rays_validation():
    prepared = prepare_config(AWS)
    validate_config(prepared)
    assert prepared["head_node_type"] == "head"


def test_aws_node_types_advertise_their_architecture():
    types = AWS["available_node_types"]
    assert types["head"]["resources"] == {"CPU": 0}
    for name, resource in WORKER_TYPES.items():
        node = types[name]
        assert list(node["resources"]) == [resource]
        assert 0 <= node["min_workers"] <= node["max_workers"] <= AWS["max_workers"]
        instance, image = node["node_config"]["InstanceType"], node["node_config"]["ImageId"]
        arch = "arm64" if name == "graviton" else "amd64"
        assert bool(GRAVITON.match(instance)) == (name == "graviton"), instance
        assert f"/{arch}/" in image, image


def test_aws_nodes_start_with_token_auth_and_a_private_dashboard():
    assert "~/.ray/auth_token" in AWS["file_mounts"]
    starts = AWS["head_start_ray_commands"] + AWS["worker_start_ray_commands"]
    ray_starts = [c for c in starts if "ray start" in c]
    assert len(ray_starts) == 2
    assert all("RAY_AUTH_MODE=token" in c for c in ray_starts)
    (head_start,) = [c for c in AWS["head_start_ray_commands"] if "ray start" in c]
    assert "--dashboard-host=127.0.0.1" in head_start
    setup = "\n".join(AWS["setup_commands"])
    assert "uv export --locked" in setup and "install --quiet --no-deps ." in setup


def test_kuberay_cluster_has_the_same_groups_with_token_auth():
    assert KUBE["apiVersion"] == "ray.io/v1" and KUBE["kind"] == "RayCluster"
    spec = KUBE["spec"]
    assert spec["rayVersion"] == metadata.version("ray")
    assert spec["authOptions"] == {"mode": "token"}
    head = spec["headGroupSpec"]
    assert head["serviceType"] == "ClusterIP"
    assert head["rayStartParams"]["num-cpus"] == "0"
    groups = {g["groupName"]: g for g in spec["workerGroupSpecs"]}
    assert set(groups) == set(WORKER_TYPES)
    for name, resource in WORKER_TYPES.items():
        group = groups[name]
        # KubeRay passes the value to `ray start --resources`, quoted as JSON in a string.
        resources = json.loads(json.loads(group["rayStartParams"]["resources"]))
        aws_resources = AWS["available_node_types"][name]["resources"]
        assert resources == aws_resources == {resource: resources[resource]}
        pod = group["template"]["spec"]
        (container,) = pod["containers"]
        assert int(container["resources"]["limits"]["cpu"]) == resources[resource]
        assert pod["nodeSelector"]["kubernetes.io/arch"] == (
            "arm64" if name == "graviton" else "amd64"
        )
        assert 0 <= group["minReplicas"] <= group["maxReplicas"]
