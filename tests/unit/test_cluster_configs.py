"""deployments/ray/: the AWS launcher config passes Ray's own validation, and both
cluster configs describe the same x86 and Graviton node types, with token auth on."""

from __future__ import annotations

import json
import re
from importlib import metadata
from pathlib import Path

import yaml

from tasks.cluster.internals import validate_cluster_config

RAY_DIR = Path(__file__).resolve().parents[2] / "deployments" / "ray"
AWS = yaml.safe_load((RAY_DIR / "aws.yaml").read_text())
KUBE_DOCS = {d["kind"]: d for d in yaml.safe_load_all((RAY_DIR / "kuberay.yaml").read_text())}
KUBE = KUBE_DOCS["RayCluster"]
ROOT = RAY_DIR.parents[1]
GRAVITON = re.compile(r"^[a-z]\d+g[a-z]*\.")  # m7g, c7gn, r8g, ...
WORKER_TYPES = {"intel": "Intel", "graviton": "Graviton"}


def test_aws_config_passes_rays_validation():
    prepared = validate_cluster_config(AWS)
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


def test_every_aws_node_type_has_an_instance_profile():
    """Ray's launcher gives its default role to the head only: a worker type without a
    profile of its own could not reach S3."""
    types = AWS["available_node_types"]
    profiles = {name: t["node_config"]["IamInstanceProfile"]["Name"] for name, t in types.items()}
    assert set(profiles) == {"head", *WORKER_TYPES}
    assert all(profiles.values())
    assert len({profiles[name] for name in WORKER_TYPES}) == 1  # one worker role, one policy
    assert profiles["head"] not in {profiles[name] for name in WORKER_TYPES}


def _pods() -> dict[str, dict]:
    spec = KUBE["spec"]
    pods = {"head": spec["headGroupSpec"]["template"]["spec"]}
    pods.update({g["groupName"]: g["template"]["spec"] for g in spec["workerGroupSpecs"]})
    return pods


def test_every_kuberay_pod_runs_as_the_irsa_service_account():
    account = KUBE_DOCS["ServiceAccount"]
    role = account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]
    assert re.fullmatch(r"arn:aws:iam::[A-Z_0-9]+:role/[\w+=,.@-]+", role)
    for name, pod in _pods().items():
        assert pod["serviceAccountName"] == account["metadata"]["name"], name


def test_images_are_pinned_per_architecture():
    for name, pod in _pods().items():
        (container,) = pod["containers"]
        repository, _, tag = container["image"].rpartition(":")
        arch = pod["nodeSelector"]["kubernetes.io/arch"]
        assert repository and tag.endswith(f"-{arch}"), container["image"]
        assert re.fullmatch(rf"\d+\.\d+\.\d+-{arch}", tag), f"{name}: {tag} is not a version"
    dockerfile = (RAY_DIR / "Dockerfile").read_text()
    bases = re.findall(r"^FROM (\S+)", dockerfile, re.MULTILINE)
    ray_version = metadata.version("ray")
    assert "rayproject/ray:${RAY_VERSION}-py311 AS base-amd64" in dockerfile
    assert "rayproject/ray:${RAY_VERSION}-py311-aarch64 AS base-arm64" in dockerfile
    assert f"ARG RAY_VERSION={ray_version}" in dockerfile
    assert bases[-1] == "base-${TARGETARCH}"
    assert not any("latest" in base for base in bases)


def _docker_ignores(path: str, patterns: list[str]) -> bool:
    """Whether a .dockerignore's patterns leave ``path`` out of the build context (a
    pattern that matches a directory leaves out everything below it)."""
    from fsspec.utils import glob_translate

    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    return any(re.match(glob_translate(p), prefix) for p in patterns for prefix in prefixes)


def test_dockerignore_keeps_local_state_and_data_out_of_the_image():
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert not any(p.startswith("!") for p in patterns)
    for left_out in (
        ".venv/bin/python",
        ".prefect/prefect.db",
        "data/local-bucket/raw/part-00000.parquet",
        ".git/HEAD",
        ".tools/bin/uv",
        "tasks/__pycache__/clean.cpython-311.pyc",
    ):
        assert _docker_ignores(left_out, patterns), left_out
    kernel = "tasks/steps/preprocess/clean.py"
    for needed in ("pyproject.toml", "uv.lock", "README.md", "flows/pipeline.py", kernel):
        assert (ROOT / needed).exists()
        assert not _docker_ignores(needed, patterns), needed
