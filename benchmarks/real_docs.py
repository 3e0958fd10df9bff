"""Real English documents without the internet: the texts that ship with installed packages.

Three kinds, all in the running interpreter's site-packages: the long description of
every distribution (the body of its ``*.dist-info/METADATA``, mostly its README), the
license and notice files beside it, and the ``.md`` and ``.rst`` files packages carry.
Documents of at least ``MIN_CHARS`` characters, each text once, in a fixed shuffled
order, so the first megabytes mix every kind. Larger sizes repeat the whole set, copy
after copy (``copy/source`` ids): the quality rules judge each document on its own, so a
repeat costs what the first judging did.
"""

from __future__ import annotations

import hashlib
import random
import sysconfig
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

MIN_CHARS = 200
SEED = 0
SCHEMA = pa.schema([("id", pa.string()), ("text", pa.string())])
# Files in a dist-info directory holding prose (licenses/ holds more of them).
_PROSE_NAMES = ("LICENSE", "LICENCE", "COPYING", "NOTICE", "AUTHORS")
_DOC_SUFFIXES = (".md", ".rst")


def _site_packages() -> list[Path]:
    paths = sysconfig.get_paths()
    return sorted({Path(paths["purelib"]), Path(paths["platlib"])})


def _sources(root: Path) -> Iterator[tuple[str, Path]]:
    """(kind, file) of every candidate under one site-packages, in path order."""
    for path in sorted(root.rglob("*")):
        if not path.is_file():
            continue
        inside_dist_info = any(part.endswith(".dist-info") for part in path.parts)
        if path.name == "METADATA" and path.parent.name.endswith(".dist-info"):
            yield "metadata", path
        elif inside_dist_info and path.name.upper().startswith(_PROSE_NAMES):
            yield "license", path
        elif path.suffix.lower() in _DOC_SUFFIXES:
            yield "doc", path


def _text(kind: str, path: Path) -> str | None:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    if kind == "metadata":  # the headers end at the first blank line
        _, _, text = text.partition("\n\n")
    return text.strip()


def documents() -> list[tuple[str, str]]:
    """(id, text) of every distinct document, in a fixed shuffled order."""
    seen: set[bytes] = set()
    found: list[tuple[str, str]] = []
    for root in _site_packages():
        for kind, path in _sources(root):
            text = _text(kind, path)
            if text is None or len(text) < MIN_CHARS:
                continue
            digest = hashlib.blake2b(text.encode(), digest_size=16).digest()
            if digest in seen:
                continue
            seen.add(digest)
            name = path.parent.name if kind == "metadata" else str(path.relative_to(root))
            found.append((f"{kind}:{name}", text))
    random.Random(SEED).shuffle(found)
    return found


def repeated(docs: list[tuple[str, str]], total_bytes: int) -> Iterator[tuple[str, str]]:
    """The documents copy after copy, until at least ``total_bytes`` of UTF-8 text."""
    if not docs:
        raise RuntimeError("no documents found in site-packages")
    written, copy = 0, 0
    while True:
        for name, text in docs:
            if written >= total_bytes:
                return
            yield f"{copy:04d}/{name}", text
            written += len(text.encode())
        copy += 1


def write_parquet(
    docs: list[tuple[str, str]], out: Path, total_bytes: int, file_bytes: int, rows: int = 1024
) -> dict[str, int]:
    """``total_bytes`` of text as Parquet files of about ``file_bytes`` each (id, text)."""
    out.mkdir(parents=True)
    files = rows_written = text_bytes = 0
    writer: pq.ParquetWriter | None = None
    in_file = 0
    ids: list[str] = []
    texts: list[str] = []

    def flush() -> None:
        if ids:
            assert writer is not None
            writer.write_table(pa.table([ids, texts], schema=SCHEMA))
            ids.clear()
            texts.clear()

    for doc_id, text in repeated(docs, total_bytes):
        if writer is None or in_file >= file_bytes:
            flush()
            if writer is not None:
                writer.close()
            writer = pq.ParquetWriter(out / f"part-{files:05d}.parquet", SCHEMA)
            files, in_file = files + 1, 0
        size = len(text.encode())
        ids.append(doc_id)
        texts.append(text)
        in_file += size
        text_bytes += size
        rows_written += 1
        if len(ids) >= rows:
            flush()
    flush()
    if writer is not None:
        writer.close()
    return {"files": files, "rows": rows_written, "text_bytes": text_bytes}


def first_bytes(path: Path, total_bytes: int, rows: int = 1024) -> Iterator[pa.RecordBatch]:
    """Batches of up to ``rows`` rows of a written corpus, its first rows holding at
    least ``total_bytes`` of text."""
    files = [str(p) for p in sorted(path.glob("*.parquet"))]
    taken = 0
    for batch in ds.dataset(files, format="parquet").to_batches(batch_size=rows):
        if taken >= total_bytes:
            return
        sizes = pc.binary_length(batch.column("text")).to_numpy(zero_copy_only=False)
        cumulative = taken + sizes.cumsum()
        # Rows up to and including the one that reaches the total.
        keep = int((cumulative < total_bytes).sum()) + 1
        batch = batch.slice(0, min(keep, batch.num_rows))
        taken += int(sizes[: batch.num_rows].sum())
        yield batch


def summary(docs: list[tuple[str, str]]) -> dict[str, int]:
    """How many distinct documents of each kind, and their bytes of text."""
    kinds: dict[str, int] = {}
    for name, _ in docs:
        kind = name.split(":", 1)[0]
        kinds[kind] = kinds.get(kind, 0) + 1
    return {
        "documents": len(docs),
        "text_bytes": sum(len(text.encode()) for _, text in docs),
        **{f"{kind}_documents": n for kind, n in sorted(kinds.items())},
    }
