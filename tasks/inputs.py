"""Finding and reading input files (Parquet or JSON Lines), with errors that name them."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.json as pajson
import pyarrow.parquet as pq

from tasks import storage
from tasks.dataset import manifest_fingerprint, read_manifest
from tasks.errors import InputError
from tasks.storage import Location

FORMATS = ("parquet", "json")
EXTENSIONS = {"parquet": (".parquet", ".pq"), "json": (".jsonl", ".json", ".ndjson")}
# JSON is parsed in blocks of about this size, cut at line ends.
JSON_BLOCK_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class InputFile:
    uri: str
    size_bytes: int
    num_rows: int | None = None  # known for Parquet (footer) and manifest entries


@dataclass(frozen=True)
class Inputs:
    root: Location
    format: str
    files: list[InputFile]
    fingerprint: dict


def _storage_error(loc: Location, exc: Exception) -> bool:
    """True for an I/O error of the store itself (S3 throttling, permissions), which is
    not a defect of the file and must keep its type for the retry policy."""
    return (
        loc.scheme != "file" and isinstance(exc, OSError) and not isinstance(exc, pa.ArrowInvalid)
    )


def _reraise_explained(loc: Location, exc: OSError) -> None:
    better = storage.explain(exc, loc, "read")
    if better is exc:
        raise exc
    raise better from exc


def _format_of(name: str) -> str | None:
    lower = name.lower()
    for fmt, extensions in EXTENSIONS.items():
        if lower.endswith(extensions):
            return fmt
    return None


def _hidden(relative: str) -> bool:
    # Spark, Hive and Ray mark metadata with a leading "_" or "." (_SUCCESS, .crc).
    return any(part.startswith(("_", ".")) for part in relative.split("/"))


def discover(uri: str, input_format: str = "auto") -> Inputs:
    """The input files at ``uri``: a committed dataset, a directory, or one file."""
    if input_format not in (*FORMATS, "auto"):
        raise InputError(f"input_format must be one of parquet, json, auto; got {input_format!r}")
    root = storage.resolve(uri)
    with storage.explained(root, "read"):
        return _discover(root, input_format)


def _discover(root: Location, input_format: str) -> Inputs:
    kind = storage.info(root)
    if kind.type == storage.pafs.FileType.NotFound:
        if root.scheme == "s3" and not storage.exists(Location("s3", root.bucket, root.s3)):
            raise InputError(f"input {root.uri} does not exist: no bucket {root.bucket}")
        raise InputError(f"input {root.uri} does not exist")
    if kind.type == storage.pafs.FileType.File:
        fmt = input_format if input_format != "auto" else _format_of(root.name)
        if fmt is None:
            raise InputError(f"{root.uri}: cannot tell the format from the name; set input_format")
        return Inputs(
            root,
            fmt,
            [InputFile(root.uri, kind.size)],
            {"files": [[root.uri, kind.size, kind.mtime_ns]]},
        )

    manifest = read_manifest(root)
    if manifest is not None:
        if input_format == "json":
            raise InputError(f"{root.uri} is a Parquet dataset but input_format is 'json'")
        files = [
            InputFile(root.child(f["path"]).uri, f["size_bytes"], f["num_rows"])
            for f in manifest["files"]
        ]
        return Inputs(root, "parquet", files, {"manifest_sha256": manifest_fingerprint(root)})

    candidates = []
    for f in storage.list_files(root):
        relative = Location(root.scheme, f.path).relative_to(root)
        if not _hidden(relative):
            candidates.append((relative, f))
    by_format: dict[str, list] = {fmt: [] for fmt in FORMATS}
    for relative, f in candidates:
        fmt = _format_of(relative)
        if fmt is not None:
            by_format[fmt].append(f)
    if input_format == "auto":
        present = [fmt for fmt in FORMATS if by_format[fmt]]
        if len(present) > 1:
            raise InputError(f"{root.uri} holds both Parquet and JSON files; set input_format")
        input_format = present[0] if present else "parquet"
    chosen = by_format[input_format]
    if not chosen:
        seen = ", ".join(r for r, _ in candidates[:5]) or "nothing"
        raise InputError(
            f"no {input_format} input files ({', '.join(EXTENSIONS[input_format])}) under "
            f"{root.uri} (found: {seen})"
        )
    files = [InputFile(Location(root.scheme, f.path).uri, f.size) for f in chosen]
    fingerprint = {"files": [[f.path, f.size, f.mtime_ns] for f in chosen]}
    return Inputs(root, input_format, files, fingerprint)


def parquet_metadata(uri: str) -> tuple[int, pa.Schema]:
    """Row count and Arrow schema from a Parquet footer; a clear error if unreadable."""
    loc = storage.resolve(uri)
    try:
        with loc.fs.open_input_file(loc.path) as handle:
            meta = pq.ParquetFile(handle)
            return meta.metadata.num_rows, meta.schema_arrow
    except FileNotFoundError as exc:
        raise InputError(f"{uri}: input file disappeared") from exc
    except (pa.ArrowInvalid, OSError) as exc:
        if _storage_error(loc, exc):
            _reraise_explained(loc, exc)
        raise InputError(f"{uri}: not a readable Parquet file ({exc})") from exc


def iter_parquet(
    uri: str, batch_size: int, start: int = 0, stop: int | None = None
) -> Iterator[pa.Table]:
    """Rows ``[start, stop)`` of a Parquet file in batches, reading only the row groups needed."""
    loc = storage.resolve(uri)
    try:
        with loc.fs.open_input_file(loc.path) as handle:
            pf = pq.ParquetFile(handle)
            meta = pf.metadata
            stop = meta.num_rows if stop is None else stop
            groups, first_row, offset = [], None, 0
            for g in range(meta.num_row_groups):
                n = meta.row_group(g).num_rows
                if offset + n > start and offset < stop:
                    groups.append(g)
                    first_row = offset if first_row is None else first_row
                offset += n
            if not groups:
                return
            position = first_row
            for batch in pf.iter_batches(batch_size=batch_size, row_groups=groups):
                lo = max(start - position, 0)
                hi = min(stop - position, batch.num_rows)
                if hi > lo:
                    yield pa.Table.from_batches([batch.slice(lo, hi - lo)])
                position += batch.num_rows
                if position >= stop:
                    return
    except (pa.ArrowInvalid, OSError) as exc:
        if _storage_error(loc, exc):
            _reraise_explained(loc, exc)
        raise InputError(f"{uri}: cannot read Parquet data ({exc})") from exc


def _json_error_location(data: bytes, first_line: int) -> str:
    """Find the first bad line in a block with Python's json, for the error message."""
    for number, line in enumerate(data.split(b"\n"), start=first_line):
        if line.strip():
            try:
                value = json.loads(line)
            except ValueError as exc:
                return f"line {number}: {exc}"
            if not isinstance(value, dict):
                return f"line {number}: expected a JSON object, got {type(value).__name__}"
    return f"lines {first_line}+"


def iter_json(uri: str, batch_size: int, schema: pa.Schema | None = None) -> Iterator[pa.Table]:
    """A JSON Lines file in batches. Rejects non-UTF-8 bytes and bad lines, naming the line.

    pyarrow's JSON reader would silently replace invalid UTF-8, so each block is decoded
    strictly first. Blocks after the first are parsed with the first block's schema, so
    a column changing type is an error rather than a silently different file schema.
    """
    loc = storage.resolve(uri)
    line = 1
    carry = b""
    try:
        stream = loc.fs.open_input_stream(loc.path)
    except OSError as exc:
        if _storage_error(loc, exc):
            _reraise_explained(loc, exc)
        raise InputError(f"{uri}: cannot open ({exc})") from exc
    with stream:
        while True:
            chunk = stream.read(JSON_BLOCK_BYTES)
            data = carry + chunk
            if not chunk:
                block, carry = data, b""
            else:
                cut = data.rfind(b"\n") + 1
                block, carry = data[:cut], data[cut:]
            if block.strip():
                try:
                    block.decode("utf-8")
                except UnicodeDecodeError as exc:
                    bad_line = line + block.count(b"\n", 0, exc.start)
                    raise InputError(
                        f"{uri}: line {bad_line} is not valid UTF-8 ({exc.reason})"
                    ) from exc
                options = pajson.ParseOptions(
                    explicit_schema=schema, unexpected_field_behavior="error" if schema else "infer"
                )
                try:
                    table = pajson.read_json(io.BytesIO(block), parse_options=options)
                except pa.ArrowInvalid as exc:
                    where = _json_error_location(block, line)
                    raise InputError(f"{uri}: malformed JSON Lines at {where} ({exc})") from exc
                if schema is None:
                    schema = _settle_json_schema(table.schema)
                    table = table.cast(schema)
                for batch in table.to_batches(max_chunksize=batch_size):
                    yield pa.Table.from_batches([batch], schema=table.schema)
            line += block.count(b"\n")
            if not chunk:
                return


def _settle_json_schema(schema: pa.Schema) -> pa.Schema:
    """Fix the schema inferred from a first block: a column seen only as null is a string
    (so later blocks with values still parse; ``text`` in particular)."""
    return pa.schema([f.with_type(pa.string()) if pa.types.is_null(f.type) else f for f in schema])


def count_json_rows(uri: str) -> tuple[int, pa.Schema]:
    """Rows and schema of a JSON Lines file (a full parse: it also validates it)."""
    rows, schema = 0, None
    for table in iter_json(uri, batch_size=1 << 20):
        rows += table.num_rows
        schema = schema or table.schema
    if schema is None:
        return 0, pa.schema([])
    return rows, schema
