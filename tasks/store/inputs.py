"""Finding and reading input files (Parquet or JSON Lines), with errors that name them."""

from __future__ import annotations

import contextlib
import json
import posixpath
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson
import pyarrow.parquet as pq

from tasks.errors import InputError
from tasks.store import storage
from tasks.store.dataset import PARQUET, manifest_fingerprint, part_suffixes, read_manifest
from tasks.store.storage import Location

FORMATS = ("parquet", "json")
EXTENSIONS = {"parquet": (".parquet", ".pq"), "json": (".jsonl", ".json", ".ndjson")}
# JSON Lines may be compressed; the codec is told by the last suffix (a.jsonl.gz).
CODECS = {".gz": "gzip", ".bz2": "bz2", ".zst": "zstd", ".zstd": "zstd"}
# JSON is parsed in blocks of about this size (decompressed), cut at line ends.
JSON_BLOCK_BYTES = 4 * 1024 * 1024
# The longest JSON line read, in bytes without its newline; a longer one is refused naming
# the file and line. A block holding a long line is that line and its neighbours, and
# reading it holds a few times the line (the pieces read, the line joined, the values
# parsed: for a 100 MB line, 330 MB of Arrow memory, 530 MB of peak memory in all), so
# this bounds a part's memory. Under 2 GiB: pyarrow's JSON block size is an int32.
JSON_MAX_LINE_BYTES = 256 * 1024 * 1024
# pyarrow's JSON reader cuts its input into blocks of this size and refuses a line longer
# than one; a block of ours holding such a line is parsed as one block of its size.
_PYARROW_JSON_BLOCK = pajson.ReadOptions().block_size
# How pyarrow reports a compressed stream it cannot decode (an OSError like any other).
_CODEC_ERROR = re.compile(
    r"Truncated compressed stream|inflate failed|decompress failed|gzip|zlib|ZSTD|bz2",
    re.IGNORECASE,
)


# What a compressed JSON Lines file of a corpus usually grows to once decompressed (the
# steps' estimates of what they write).
COMPRESSED_JSON_RATIO = 4


@dataclass(frozen=True)
class InputFile:
    loc: Location  # with the S3 settings it is read with
    size_bytes: int
    num_rows: int | None = None  # known for Parquet (footer) and manifest entries

    @property
    def uri(self) -> str:
        return self.loc.uri


@dataclass(frozen=True)
class Inputs:
    root: Location  # the directory the files are under (a glob's base)
    uri: str  # what was asked for: the root, a file, or a glob
    format: str
    files: list[InputFile]
    fingerprint: dict

    def record(self, num_rows: int) -> dict:
        """What a manifest records of these inputs (``num_rows`` of them in all)."""
        return {
            "num_files": len(self.files),
            "num_rows": num_rows,
            "size_bytes": sum(f.size_bytes for f in self.files),
            **self.fingerprint,
        }


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


def codec_of(name: str) -> str | None:
    """The compression of a file as its last suffix tells (``gzip`` for ``a.jsonl.gz``)."""
    return CODECS.get(posixpath.splitext(name.lower())[1])


def format_of(name: str) -> str | None:
    """``parquet`` or ``json`` as the name's suffixes tell; compressed JSON Lines count."""
    lower = name.lower()
    if codec_of(lower):
        lower = posixpath.splitext(lower)[0]
        return "json" if lower.endswith(EXTENSIONS["json"]) else None
    for fmt, extensions in EXTENSIONS.items():
        if lower.endswith(extensions):
            return fmt
    return None


def _hidden(relative: str) -> bool:
    # Spark, Hive and Ray mark metadata with a leading "_" or "." (_SUCCESS, .crc).
    return any(part.startswith(("_", ".")) for part in relative.split("/"))


def _suffixes(fmt: str) -> str:
    names = EXTENSIONS[fmt]
    if fmt == "json":
        names = (*names, *(f"{names[0]}{c}" for c in CODECS))
    return ", ".join(names)


def discover(uri: str, input_format: str = "auto", s3: storage.S3Settings | None = None) -> Inputs:
    """The input files at ``uri`` (on S3 as ``s3`` says): a committed dataset, a directory
    (walked recursively), a glob (``s3://bucket/c4/en/c4-train.*.json.gz``; ``**`` spans
    directories) or one file. Names starting with ``_`` or ``.`` are skipped, as pyarrow
    and Spark do."""
    if input_format not in (*FORMATS, "auto"):
        raise InputError(f"input_format must be one of parquet, json, auto; got {input_format!r}")
    base, pattern = storage.split_glob(uri)
    root = storage.resolve(base, s3)
    with storage.explained(root, "read"):
        if pattern is not None:
            return _discover_glob(root, pattern, input_format)
        return _discover(root, input_format)


def _discover_glob(root: Location, pattern: str, input_format: str) -> Inputs:
    from fsspec.utils import glob_translate

    shown = f"{root.uri.rstrip('/')}/{pattern}"
    matcher = re.compile(glob_translate(pattern))
    is_dir = storage.info(root).type == storage.pafs.FileType.Directory
    matched = [(r, f) for r, f in _visible_files(root) if matcher.match(r)] if is_dir else []
    if not matched:
        raise InputError(f"input glob {shown} matches no files")
    return _choose(root, shown, matched, input_format, named=True)


def _visible_files(root: Location) -> list[tuple[str, storage.pafs.FileInfo]]:
    """``(path relative to root, info)`` of every file below ``root``, hidden ones left out."""
    found = []
    for f in storage.list_files(root):
        relative = Location(root.scheme, f.path).relative_to(root)
        if not _hidden(relative):
            found.append((relative, f))
    return found


def _choose(
    root: Location, shown: str, found: list, input_format: str, named: bool = False
) -> Inputs:
    """The files of one format among ``found`` ((relative name, FileInfo) pairs).

    Files a glob ``named`` are taken whatever their suffix when ``input_format`` says
    what they are; in a directory, only names with that format's suffixes count.
    """
    explicit = input_format != "auto"
    by_format: dict[str, list] = {fmt: [] for fmt in FORMATS}
    unknown = []
    for relative, f in found:
        fmt = format_of(relative)
        (by_format[fmt] if fmt else unknown).append(f)
    if input_format == "auto":
        present = [fmt for fmt in FORMATS if by_format[fmt]]
        if len(present) > 1:
            raise InputError(f"{shown} holds both Parquet and JSON files; set input_format")
        input_format = present[0] if present else "parquet"
    chosen = by_format[input_format] + (unknown if named and explicit else [])
    chosen.sort(key=lambda f: f.path)
    if not chosen:
        seen = ", ".join(r for r, _ in found[:5]) or "nothing"
        raise InputError(
            f"no {input_format} input files ({_suffixes(input_format)}) under {shown} "
            f"(found: {seen})"
        )
    files = [InputFile(Location(root.scheme, f.path, root.s3), f.size) for f in chosen]
    fingerprint = {"files": [[f.path, f.size, f.mtime_ns] for f in chosen]}
    return Inputs(root, shown, input_format, files, fingerprint)


def _discover(root: Location, input_format: str) -> Inputs:
    kind = storage.info(root)
    if kind.type == storage.pafs.FileType.NotFound:
        if root.scheme == "s3" and not storage.exists(Location("s3", root.bucket, root.s3)):
            raise InputError(f"input {root.uri} does not exist: no bucket {root.bucket}")
        raise InputError(f"input {root.uri} does not exist")
    if kind.type == storage.pafs.FileType.File:
        fmt = input_format if input_format != "auto" else format_of(root.name)
        if fmt is None:
            raise InputError(f"{root.uri}: cannot tell the format from the name; set input_format")
        return Inputs(
            root,
            root.uri,
            fmt,
            [InputFile(root, kind.size)],
            {"files": [[root.uri, kind.size, kind.mtime_ns]]},
        )

    manifest = read_manifest(root)
    if manifest is not None:
        kinds = [s for s in part_suffixes(manifest) if s not in PARQUET]
        if kinds:  # e.g. tokenized shards (.bin/.idx): no step reads them as rows
            raise InputError(
                f"{root.uri} holds {' and '.join('.' + k for k in kinds)} parts, not Parquet "
                "rows: point it at the dataset they were made from"
            )
        if input_format == "json":
            raise InputError(f"{root.uri} is a Parquet dataset but input_format is 'json'")
        files = [
            InputFile(root.child(f["path"]), f["size_bytes"], f["num_rows"])
            for f in manifest["files"]
        ]
        fingerprint = {"manifest_sha256": manifest_fingerprint(root)}
        return Inputs(root, root.uri, "parquet", files, fingerprint)

    return _choose(root, root.uri, _visible_files(root), input_format)


def parquet_metadata(where: Location | str) -> tuple[int, pa.Schema]:
    """Row count and Arrow schema from a Parquet footer; a clear error if unreadable."""
    loc = storage.as_location(where)
    uri = loc.uri
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
    where: Location | str, batch_size: int, start: int = 0, stop: int | None = None
) -> Iterator[pa.Table]:
    """Rows ``[start, stop)`` of a Parquet file in batches, reading only the row groups needed."""
    loc = storage.as_location(where)
    uri = loc.uri
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
                    rows = batch.slice(lo, hi - lo)
                    _check_parquet_utf8(uri, rows, position + lo)
                    yield pa.Table.from_batches([rows])
                position += batch.num_rows
                if position >= stop:
                    return
    except (pa.ArrowInvalid, OSError) as exc:
        if _storage_error(loc, exc):
            _reraise_explained(loc, exc)
        raise InputError(f"{uri}: cannot read Parquet data ({exc})") from exc


def _holds_strings(kind: pa.DataType) -> bool:
    """Whether a column of ``kind`` has strings in it, at any depth."""
    if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind):
        return True
    if pa.types.is_dictionary(kind):
        return _holds_strings(kind.value_type)
    return any(_holds_strings(kind.field(i).type) for i in range(kind.num_fields))


def _valid(column: pa.Array) -> bool:
    """Whether ``column``'s strings are all UTF-8. Bytes all below 0x80 are (a check
    six times faster than Arrow's full validation, which the others get)."""
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        data = column.buffers()[2]  # the parent's whole buffer if a slice: still ASCII
        if data is None or not data.size or np.frombuffer(data, np.uint8).max() < 0x80:
            return True
    try:
        column.validate(full=True)
    except pa.ArrowInvalid:
        return False
    return True


def _first_invalid_row(column: pa.Array) -> int | None:
    """The first row of ``column`` whose strings are not UTF-8 (the end of the shortest
    prefix that fails), or None. A slice of a struct or list is validated with its
    children whole: copies of its rows alone are judged."""

    def valid_prefix(n: int) -> bool:
        return _valid(pa.concat_arrays([column.slice(0, n)]))

    good, bad = 0, len(column)
    if valid_prefix(bad):
        return None
    while bad - good > 1:
        middle = (good + bad) // 2
        good, bad = (middle, bad) if valid_prefix(middle) else (good, middle)
    return bad - 1


def _check_parquet_utf8(uri: str, batch: pa.RecordBatch, first_row: int) -> None:
    """Parquet's reader takes a string column's bytes as they are: check that they are
    UTF-8 (everything downstream assumes it), naming the file, column and row (of the
    file, from 0) of the first that is not. Costs a look at the bytes; a batch that fails
    is searched for its row."""
    for name, column in zip(batch.schema.names, batch.columns, strict=True):
        if not _holds_strings(column.type) or _valid(column):
            continue
        row = _first_invalid_row(column)
        if row is not None:
            raise InputError(f"{uri}: row {first_row + row} of column {name!r} is not valid UTF-8")


def _json_error_location(data: bytes, first_line: int) -> str | None:
    """The first line of a block Python's json rejects, for the error message."""
    for number, line in enumerate(data.split(b"\n"), start=first_line):
        if line.strip():
            try:
                value = json.loads(line)
            except ValueError as exc:
                return f"line {number}: {exc}"
            if not isinstance(value, dict):
                return f"line {number}: expected a JSON object, got {type(value).__name__}"
    return None


def _as_binary(block: pa.Buffer) -> pa.Array:
    offsets = pa.array([0, block.size], pa.int64()).buffers()[1]
    return pa.Array.from_buffers(pa.large_binary(), 1, [None, offsets, block])


def _lines_in(block: pa.Array) -> int:
    return pc.count_substring(block, b"\n")[0].as_py()


def _last_newline(data: pa.Buffer) -> int:
    """Index of the last ``\\n`` in ``data``, or -1; looks at the tail first (lines are short
    next to a block) so a block is not copied to find its end."""
    view, window = memoryview(data), 1 << 16
    while True:
        start = max(0, data.size - window)
        found = bytes(view[start:]).rfind(b"\n")
        if found >= 0 or start == 0:
            return start + found if found >= 0 else -1
        window *= 16


def _first_newline(data: pa.Buffer) -> int:
    """Index of the first ``\\n`` in ``data``, or -1, without copying all of it."""
    view, window = memoryview(data), 1 << 16
    while True:
        found = bytes(view[:window]).find(b"\n")
        if found >= 0 or window >= data.size:
            return found
        window *= 16


def _joined(pieces: list[pa.Buffer]) -> pa.Buffer:
    if len(pieces) == 1:
        return pieces[0]
    out = pa.BufferOutputStream()  # Arrow's memory, like the buffers themselves
    for piece in pieces:
        out.write(piece)
    return out.getvalue()


def _too_long(uri: str, line: int) -> InputError:
    return InputError(
        f"{uri}: line {line} is longer than {JSON_MAX_LINE_BYTES} bytes, the limit for a "
        "JSON line (JSON_MAX_LINE_BYTES)"
    )


def _json_blocks(where: Location | str) -> Iterator[tuple[int, int, pa.Buffer]]:
    """``(first line number, lines, data)`` of a JSON Lines file, decompressed as its name says,
    in blocks of about ``JSON_BLOCK_BYTES`` cut at line ends (a block holding a longer line
    is as long as it needs); each checked to be UTF-8 (pyarrow's JSON reader would silently
    replace invalid bytes). A line over ``JSON_MAX_LINE_BYTES`` is refused as soon as it is
    seen to be. The blocks are Arrow buffers: no Python copies of them linger in the heap."""
    loc = storage.as_location(where)
    uri = loc.uri
    codec = codec_of(loc.name)
    try:
        stream = loc.fs.open_input_stream(loc.path, compression=codec)
    except OSError as exc:
        if _storage_error(loc, exc):
            _reraise_explained(loc, exc)
        raise InputError(f"{uri}: cannot open ({exc})") from exc
    # A line fitting in one read is within the limit: only those read across several are
    # measured.
    read_size = min(JSON_BLOCK_BYTES, JSON_MAX_LINE_BYTES)
    line = 1
    pending: list[pa.Buffer] = []  # the start of line ``line``, read so far (no newline yet)
    pending_size = 0
    with stream:
        while True:
            try:
                chunk = stream.read_buffer(read_size)
            except OSError as exc:
                # A codec's complaint is the file's fault, wherever the file is stored.
                corrupt = codec is not None and _CODEC_ERROR.search(str(exc))
                if not corrupt and _storage_error(loc, exc):
                    _reraise_explained(loc, exc)
                what = f"a corrupt {codec} stream" if corrupt else "unreadable"
                raise InputError(f"{uri}: {what} after line {line - 1} ({exc})") from exc
            if not chunk.size:
                block, pending = _joined(pending) if pending else None, []
            else:
                cut = _last_newline(chunk) + 1
                if cut == 0:  # the line goes on past this read: read on to its end
                    pending.append(chunk)
                    pending_size += chunk.size
                    if pending_size > JSON_MAX_LINE_BYTES:
                        raise _too_long(uri, line)
                    continue
                if (
                    pending_size + chunk.size > JSON_MAX_LINE_BYTES
                    and pending_size + _first_newline(chunk) > JSON_MAX_LINE_BYTES
                ):
                    raise _too_long(uri, line)
                block = _joined([*pending, chunk.slice(0, cut)])
                pending = [chunk.slice(cut)] if cut < chunk.size else []
                pending_size = chunk.size - cut
            if block is not None and block.size:
                as_binary = _as_binary(block)
                _check_utf8(uri, as_binary, line)
                lines = _lines_in(as_binary)
                yield line, lines, block
                line += lines
            if not chunk.size:
                return


def _check_utf8(uri: str, block: pa.Array, line: int) -> None:
    try:
        block.cast(pa.large_string())
    except pa.ArrowInvalid:
        data = block[0].as_py()  # only to find the bad line for the message
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as exc:
            bad_line = line + data.count(b"\n", 0, exc.start)
            raise InputError(f"{uri}: line {bad_line} is not valid UTF-8 ({exc.reason})") from exc
        raise


_TYPES_CLASH = "a column has values of incompatible types"


def _longest_line(block: pa.Buffer) -> int:
    """The length of a block's longest line, without its newline."""
    data, step = np.frombuffer(block, np.uint8), 1 << 24  # a bounded temporary
    ends = [at + np.flatnonzero(data[at : at + step] == 10) for at in range(0, data.size, step)]
    return int(np.diff(np.concatenate([[-1], *ends, [data.size]])).max()) - 1


def _read_json(block: pa.Buffer, options: pajson.ParseOptions) -> pa.Table:
    """A block parsed as ``options`` say, however long its lines."""
    try:
        return pajson.read_json(pa.BufferReader(block), parse_options=options)
    except pa.ArrowInvalid:
        if block.size < _PYARROW_JSON_BLOCK or _longest_line(block) < _PYARROW_JSON_BLOCK - 1:
            raise
    # A line longer than pyarrow's block (it refuses it as "straddling" blocks): the whole
    # block as one of pyarrow's. Measured only when a parse fails, so it costs the usual
    # blocks nothing.
    whole = pajson.ReadOptions(block_size=block.size + 1)
    return pajson.read_json(pa.BufferReader(block), read_options=whole, parse_options=options)


def _parse_json(uri: str, line: int, block: pa.Buffer, options: pajson.ParseOptions) -> pa.Table:
    try:
        return _read_json(block, options)
    except pa.ArrowInvalid as exc:
        data = block.to_pybytes()  # only to find the bad line for the message
        where = _json_error_location(data, line)
        if where is not None:
            raise InputError(f"{uri}: malformed JSON Lines at {where} ({exc})") from exc
        # Every line is JSON: a value's type does not fit the column's ("in row N").
        row = re.search(r"in row (\d+)", str(exc))
        at = f"line {_line_of_row(data, line, int(row[1]))}" if row else f"lines {line}+"
        raise InputError(f"{uri}: {_TYPES_CLASH} at {at} ({exc})") from exc


def _line_of_row(block: bytes, first_line: int, row: int) -> int:
    """The line number of the ``row``-th (0-based) non-blank line of a block."""
    for number, line in enumerate(block.split(b"\n"), start=first_line):
        if line.strip():
            if row == 0:
                return number
            row -= 1
    return first_line


def _map_type(kind: pa.DataType, leaf: Callable[[pa.DataType], pa.DataType]) -> pa.DataType:
    """``kind`` with ``leaf`` applied to every type inside structs and lists."""
    if pa.types.is_struct(kind):
        return pa.struct(
            [
                kind.field(i).with_type(_map_type(kind.field(i).type, leaf))
                for i in range(kind.num_fields)
            ]
        )
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        inner = kind.value_field.with_type(_map_type(kind.value_type, leaf))
        return pa.large_list(inner) if pa.types.is_large_list(kind) else pa.list_(inner)
    return leaf(kind)


def _timestamps_as_strings(kind: pa.DataType) -> pa.DataType:
    # JSON has no timestamps: pyarrow infers them from ISO strings, which would change the
    # column's type and the strings' spelling. They stay the strings they were.
    return _map_type(kind, lambda t: pa.string() if pa.types.is_timestamp(t) else t)


def settle_json_schema(schema: pa.Schema) -> pa.Schema:
    """A column (or struct field) seen only as null is a string: it has to have a type."""
    return pa.schema(
        [
            f.with_type(_map_type(f.type, lambda t: pa.string() if pa.types.is_null(t) else t))
            for f in schema
        ]
    )


def unify_json_schemas(schemas: list[pa.Schema], where: str) -> pa.Schema:
    """The one schema that holds every JSON block's (or file's) rows: numbers widen to
    float, nulls take the other type, struct fields are merged. Anything else (a number
    here, a string there) is an error naming ``where`` and the column."""
    try:
        return pa.unify_schemas(schemas, promote_options="permissive")
    except (pa.ArrowTypeError, pa.ArrowInvalid) as exc:
        raise InputError(f"{where} ({exc})") from exc


def _has_timestamps(schema: pa.Schema) -> bool:
    return any(_timestamps_as_strings(f.type) != f.type for f in schema)


def _infer_block(uri: str, line: int, block: pa.Buffer, pinned: dict[str, pa.DataType]) -> pa.Table:
    """Parse a block inferring its types, with timestamps turned back into strings
    (``pinned`` learns the columns that needed it)."""
    order = None
    while True:
        options = pajson.ParseOptions(
            explicit_schema=pa.schema(pinned) if pinned else None,
            unexpected_field_behavior="infer",
        )
        table = _parse_json(uri, line, block, options)
        order = order or table.column_names
        if not _has_timestamps(table.schema):
            break
        # Parse the block again with them as strings.
        strings = {f.name: _timestamps_as_strings(f.type) for f in table.schema}
        pinned.update({n: t for n, t in strings.items() if t != table.schema.field(n).type})
    # Pinned columns come first in a parse: keep the order the lines give.
    return table.select(order + [n for n in table.column_names if n not in order])


def scan_json(where: Location | str) -> tuple[int, pa.Schema]:
    """Rows and schema of a JSON Lines file: a full parse, so it also validates it."""
    loc = storage.as_location(where)
    uri = loc.uri
    rows, schema = 0, None
    pinned: dict[str, pa.DataType] = {}  # columns held to the type JSON gave them
    for line, lines, block in _json_blocks(loc):
        table = None
        if schema is not None:
            # The types so far usually fit the next block, and parsing with known types
            # is much faster than inferring them; if they do not, infer and unify.
            options = pajson.ParseOptions(explicit_schema=schema, unexpected_field_behavior="infer")
            with contextlib.suppress(pa.ArrowInvalid):
                table = _read_json(block, options)
        if table is None or _has_timestamps(table.schema):
            table = _infer_block(uri, line, block, pinned)
        rows += table.num_rows
        where = f"{uri}: {_TYPES_CLASH} at lines {line}-{line + lines - 1}"
        schema = unify_json_schemas([schema, table.schema] if schema else [table.schema], where)
    return rows, schema if schema is not None else pa.schema([])


def iter_json(
    where: Location | str, batch_size: int, schema: pa.Schema | None = None
) -> Iterator[pa.Table]:
    """A JSON Lines file in batches of ``schema`` (by default, what :func:`scan_json`
    finds, settled). Rejects non-UTF-8 bytes and bad lines, naming the line."""
    loc = storage.as_location(where)
    if schema is None:
        schema = settle_json_schema(scan_json(loc)[1])
    options = pajson.ParseOptions(explicit_schema=schema, unexpected_field_behavior="error")
    for line, _, block in _json_blocks(loc):
        table = _parse_json(loc.uri, line, block, options)
        for batch in table.to_batches(max_chunksize=batch_size):
            yield pa.Table.from_batches([batch], schema=schema)
