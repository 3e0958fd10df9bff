"""Small helpers shared by the tests."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from tasks.steps.dedup.minhash import MinHashParams
from tasks.steps.dedup.step import Dedup, DedupParams
from tasks.steps.preprocess.clean import clean_text
from tasks.steps.skeleton import run_step
from tasks.store.dataset import companion, companion_uris, listed_files
from tasks.store.storage import S3Settings, resolve


def dedup_dataset(
    input_uri: str,
    output_uri: str,
    mode: str = "exact",
    text_column: str = "cleaned_text",
    params: MinHashParams | None = None,
    s3: S3Settings | None = None,
    **options: Any,
) -> dict:
    """The dedup step on the step skeleton in this process, on the session's Ray (no
    Prefect), reaching S3 as ``s3`` says: its manifest."""
    step = DedupParams(
        input_uri=input_uri, mode=mode, text_column=text_column, minhash=params, **options
    )
    return run_step(Dedup, step, output_uri, s3=s3)


def train_tokenizer(folder: Path, texts: list[str], vocab_size: int = 400) -> Path:
    """A byte-level BPE tokenizer trained here on ``texts`` (nothing is downloaded), with
    the special token ``<|endoftext|>``, saved as ``folder/tokenizer.json``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(texts, trainer)
    tokenizer.save(str(folder / "tokenizer.json"))
    return folder / "tokenizer.json"


def tree_digest(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root``: proves an input was left byte for byte."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def companion_path(root: Path, name: str) -> Path:
    """Where the dataset at ``root`` keeps its companion ``name`` (rejected rows, an index)."""
    return Path(companion(resolve(str(root)), name).path)


def commit_old_layout(out: Path, table: pa.Table) -> Path:
    """``table`` committed at ``out`` as datasets were before companions: its parts, and
    its rejected rows inside it, in ``_rejected/`` (side folders of the manifest)."""
    from tasks.store import dataset

    (out / "_rejected").mkdir(parents=True)
    pq.write_table(table, out / "part-00000.parquet")
    pq.write_table(table, out / "_rejected" / "part-00000.parquet")
    size = (out / "part-00000.parquet").stat().st_size
    old = dataset.build_manifest(
        [dataset.FileEntry("part-00000.parquet", table.num_rows, size)],
        table.schema,
        side_folders=["_rejected"],
        side_files=["_rejected/part-00000.parquet"],
    )
    dataset.commit(resolve(str(out)), old, [])
    return out


def assert_committed(root: Path) -> dict:
    """The manifest lists exactly the files present, with true counts and sizes, and
    each companion it records is committed beside it the same way, with the manifest
    digest recorded."""
    manifest = json.loads((root / "_manifest.json").read_text())
    present = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    listed = sorted(listed_files(manifest))
    assert present == sorted([*listed, "_manifest.json"])
    for entry in manifest["files"]:
        path = root / entry["path"]
        assert os.path.getsize(path) == entry["size_bytes"]
        if path.suffix == ".idx":  # a tokenized shard's index: the documents of its .bin
            tokens = {f["path"]: f for f in manifest["files"]}[entry["path"][:-4] + ".bin"]
            documents = struct.unpack_from("<Q", path.read_bytes(), 18)[0]
            assert (entry["num_rows"], documents) == (0, tokens["num_rows"])
        elif path.suffix != ".bin":
            assert pq.ParquetFile(path).metadata.num_rows == entry["num_rows"]
    assert manifest["num_rows"] == sum(f["num_rows"] for f in manifest["files"])
    for name, recorded in (manifest.get("companions") or {}).items():
        beside = companion_path(root, name)
        side = assert_committed(beside)
        assert side["companion"] == name
        digest = hashlib.sha256((beside / "_manifest.json").read_bytes()).hexdigest()
        assert recorded["manifest_sha256"] == digest
    return manifest


def committed_bytes(root: Path) -> dict[str, bytes]:
    """The bytes of every file a committed dataset's manifest lists, by relative path,
    and of its companions' files as ``{companion}:{path}``: two outputs are the same
    output when these are equal."""
    manifest = json.loads((root / "_manifest.json").read_text())
    found = {path: (root / path).read_bytes() for path in sorted(listed_files(manifest))}
    for name in manifest.get("companions") or {}:
        side = committed_bytes(companion_path(root, name))
        found.update({f"{name}:{path}": data for path, data in side.items()})
    return found


def assert_cleaned_exactly(table: pa.Table) -> None:
    texts = table["text"].to_pylist()
    cleaned = table["cleaned_text"].to_pylist()
    expected = [None if t is None else clean_text(t) for t in texts]
    assert cleaned == expected


def jsonl_bytes(rows: list[dict]) -> bytes:
    """``rows`` as JSON Lines, UTF-8 (ready to compress)."""
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode()


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(jsonl_bytes(rows))


def start_process(args: list[str], env: dict, cwd: Path, log: Path) -> subprocess.Popen:
    """Start a server process in a session of its own, so its whole tree can be ended
    by group id; output goes to ``log``."""
    with log.open("wb") as output:  # the child has its own copy of the descriptor
        return subprocess.Popen(
            args, env=env, cwd=cwd, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )


def stop_process(proc: subprocess.Popen, grace: float = 30) -> None:
    """SIGTERM the process group ``start_process`` made, then SIGKILL whatever is left of
    it after ``grace`` s: the leader can exit before its children (Ray's GCS outlives
    ``ray start``)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def start_prefect_server(home: Path, log: Path) -> tuple[subprocess.Popen, str]:
    """``prefect server start`` (API and UI) on a free loopback port; its API URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_API_URL": url,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        # A run held back by its deployment's concurrency limit retries after this long
        # (30 s by default): the concurrency test waits for one.
        "PREFECT_SERVER_DEPLOYMENTS_CONCURRENCY_SLOT_WAIT_SECONDS": "3",
    }
    bin_dir = Path(sys.executable).parent
    server = start_process(
        [str(bin_dir / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env,
        home,
        log,
    )
    deadline = time.monotonic() + 180
    while True:
        try:
            urllib.request.urlopen(f"{url}/health", timeout=2).read()
            return server, url
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                stop_process(server)
                raise RuntimeError(
                    f"Prefect server did not start:\n{log.read_text()[-3000:]}"
                ) from None
            time.sleep(1)


def free_port() -> int:
    """A free TCP port on 127.0.0.1 for a server a test starts."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def kill_flow_when(
    script: str,
    output_uri: str,
    gcs_address: str,
    log: Path,
    ready: Callable[[str], bool],
    reads: tuple[str, ...] = (),
) -> None:
    """Run ``script`` (a flow run writing ``output_uri`` and reading ``reads``) in a
    process of its own on the Ray at ``gcs_address``, its output into ``log``; SIGKILL
    it once ``ready(output so far)``, and free the write slots (its companions' too) and
    read leases its leases would hold for minutes (as an operator would)."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound
    from prefect.settings import PREFECT_API_URL

    from tasks.orchestration import exclusive
    from tasks.store.storage import canonical_uri

    env = {
        **os.environ,
        "PREFECT_API_URL": PREFECT_API_URL.value(),
        "RAY_ADDRESS": gcs_address,
        "RAY_AUTH_MODE": "token",
    }
    proc = start_process([sys.executable, "-c", script], env, Path.cwd(), log)
    try:
        deadline = time.monotonic() + 240
        while not ready(log.read_text(errors="replace")):
            assert proc.poll() is None, "the flow ended first:\n" + log.read_text()[-3000:]
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    time.sleep(2)  # Ray ends the dead driver's tasks
    with get_client(sync_client=True) as client:
        client.delete_global_concurrency_limit_by_name(
            exclusive.limit_name(canonical_uri(output_uri))
        )
        # The write slots of the companions a step keeps beside its output, if it has any.
        for uri in companion_uris(canonical_uri(output_uri), ("rejected", "index")):
            with contextlib.suppress(ObjectNotFound):
                client.delete_global_concurrency_limit_by_name(exclusive.limit_name(uri))
        for uri in reads:
            with contextlib.suppress(ObjectNotFound):
                client.delete_global_concurrency_limit_by_name(
                    exclusive.read_limit_name(canonical_uri(uri))
                )


def with_write_faults(module: str, flow: str, arguments: str) -> str:
    """A script for :func:`kill_flow_when`: ``module.flow(arguments)`` joining the
    session's Ray, its own workers taking the write faults as the session's do."""
    return (
        "from flows.runner import PipelineRayTaskRunner\n"
        f"from {module} import {flow}\n"
        "hook = {'worker_process_setup_hook': 'tests.write_faults.install'}\n"
        "runner = PipelineRayTaskRunner(init_kwargs={'runtime_env': hook})\n"
        f"{flow}.with_options(task_runner=runner)({arguments})\n"
    )


def kill_generate_mid_write(
    output_uri: str,
    gcs_address: str,
    num_rows: int,
    num_files: int,
    wrote: Callable[[], bool],
    log: Path,
) -> None:
    """Run the generate flow in a process of its own and SIGKILL it once ``wrote()``
    sees a part (:func:`kill_flow_when`)."""
    script = (
        "from flows.generate import generate\n"
        f"generate({output_uri!r}, num_rows={num_rows}, num_files={num_files}, text_length=1000)\n"
    )
    kill_flow_when(script, output_uri, gcs_address, log, lambda _: wrote())


async def everything_prefect_recorded() -> str:
    """Every flow run and task run (parameters included), artifact and log line the
    Prefect API holds, as JSON lines: what a secret must never be found in."""
    from prefect.client.orchestration import get_client

    async with get_client() as api:
        readers = (api.read_flow_runs, api.read_task_runs, api.read_artifacts, api.read_logs)
        records = []
        for read in readers:
            offset = 0
            while page := await read(limit=200, offset=offset):
                records += [json.dumps(r.model_dump(mode="json")) for r in page]
                offset += len(page)
    return "\n".join(records)


def save_s3_block(name: str, endpoint: str, region: str = "eu-west-2") -> Any:
    """A prefect-aws AwsCredentials block with the test keys, ``region`` and the S3
    ``endpoint`` saved as ``name`` on the current Prefect server; its id."""
    from prefect_aws import AwsCredentials
    from prefect_aws.client_parameters import AwsClientParameters

    from tests.conftest import AWS_KEY_ID, AWS_SECRET

    return AwsCredentials(
        aws_access_key_id=AWS_KEY_ID,
        aws_secret_access_key=AWS_SECRET,
        region_name=region,
        aws_client_parameters=AwsClientParameters(endpoint_url=endpoint),
    ).save(name, overwrite=True)
