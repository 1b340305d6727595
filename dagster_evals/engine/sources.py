"""Reading curated rows from JSONL / CSV files or Python iterables, with errors that name the line.

A row is a JSON object with `input` (required), and optionally `expected`, `metadata` (object) and `tags`
(list of strings). With `key_field`, that top-level field is the row's stable id; without it the id is
derived from the row's content. Either way the same source always yields the same ids.
"""

from __future__ import annotations

import csv
import json
import stat
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from dagster_evals.engine.errors import InputError
from dagster_evals.engine.models import DatasetRow
from dagster_evals.engine.row_index import printable

ROW_FIELDS = ("input", "expected", "metadata", "tags")
# Deepest nesting of arrays/objects a row field may have: far beyond real eval data, well within what
# every JSON encoder, SQLite's JSON functions and the platforms' SDKs handle without recursing too deep.
MAX_NESTING_DEPTH = 200
# Largest CSV cell read (Python's csv module stops at 128 KiB by default); a platform's own request size
# limit still applies when the row is sent.
CSV_FIELD_LIMIT = 2**31 - 1


@runtime_checkable
class RowSource(Protocol):
    """Anything that yields curated rows, each paired with a human-readable location for errors."""

    def describe(self) -> str:
        """How errors and metadata name the source (a file path, a callable's name, an asset key)."""
        ...

    def read(self) -> Iterator[tuple[str, DatasetRow]]:
        """Every row with where it came from (`file:line`, `row N`), validated as it is read."""
        ...


def _nesting_depth(value: Any, stop_after: int) -> int:
    """How deeply lists/dicts nest in `value` (a scalar is 0), counting no further than `stop_after + 1`."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, Mapping | list | tuple):
            depth += 1
            deepest = max(deepest, depth)
            if depth > stop_after:
                return deepest
            stack.extend((child, depth) for child in (item.values() if isinstance(item, Mapping) else item))
    return deepest


def _text_nesting_depth(text: str) -> int:
    """How deeply arrays/objects nest in JSON text (brackets inside strings are not counted)."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def too_deep(where: str, what: str, depth: int | None) -> InputError:
    levels = f"{depth} levels deep" if depth is not None else "too deeply"
    return InputError(
        f"{where}: {what} nests arrays/objects {levels}, more than the {MAX_NESTING_DEPTH} levels a row may "
        "have; flatten it (e.g. store the deep part as a JSON string)"
    )


def _check_json(where: str, fields: Mapping[str, Any]) -> None:
    """Fail, naming the field, when a value has no JSON form (NaN, Infinity, arbitrary Python objects) or
    nests deeper than `MAX_NESTING_DEPTH`."""
    for name, value in fields.items():
        try:
            text = json.dumps(value, allow_nan=False)
        except ValueError as exc:
            raise InputError(
                f"{where}: field {name!r} holds NaN or Infinity, which JSON cannot carry; "
                "use null or a finite number"
            ) from exc
        except TypeError as exc:
            raise InputError(f"{where}: field {name!r} is not JSON: {exc}") from exc
        except RecursionError:
            raise too_deep(where, f"field {name!r}", _nesting_depth(value, 10**9)) from None
        # Counting brackets is cheap and bounds the depth; walk the value only when it might be too deep.
        if (
            text.count("[") + text.count("{") > MAX_NESTING_DEPTH
            and _nesting_depth(value, MAX_NESTING_DEPTH) > MAX_NESTING_DEPTH
        ):
            raise too_deep(where, f"field {name!r}", _nesting_depth(value, 10**9))


def row_from_mapping(record: Any, where: str, key_field: str | None) -> DatasetRow:
    """Validate one raw record and turn it into a `DatasetRow`; errors name `where` and the field."""
    if isinstance(record, DatasetRow):
        _check_json(where, {f: getattr(record, f) for f in ROW_FIELDS})
        return record
    if not isinstance(record, Mapping):
        raise InputError(f"{where}: a row must be a JSON object, got {type(record).__name__}")
    allowed = set(ROW_FIELDS) | ({key_field} if key_field else set())
    unknown = sorted(str(k) for k in record if k not in allowed)
    if unknown:
        raise InputError(
            f"{where}: unknown field(s) {', '.join(map(repr, unknown))}; a row has "
            f"{', '.join(sorted(allowed))} (put anything else under 'metadata')"
        )
    if "input" not in record:
        raise InputError(f"{where}: the row has no 'input' field")
    metadata = record.get("metadata") or {}
    if not isinstance(metadata, Mapping):
        raise InputError(f"{where}: field 'metadata' must be an object, got {type(metadata).__name__}")
    tags = record.get("tags") or []
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise InputError(f"{where}: field 'tags' must be a list of strings")
    row_id: str | None = None
    if key_field:
        key = record.get(key_field)
        if key is None or key == "":
            raise InputError(f"{where}: the key field {key_field!r} is missing or empty")
        if not isinstance(key, str | int) or isinstance(key, bool):
            raise InputError(
                f"{where}: the key field {key_field!r} must be a string or an integer, got {type(key).__name__}"
            )
        row_id = str(key)
    _check_json(where, {"input": record["input"], "expected": record.get("expected"), "metadata": metadata})
    return DatasetRow.build(
        input=record["input"],
        expected=record.get("expected"),
        metadata=dict(metadata),
        tags=tags,
        id=row_id,
    )


def _text_lines(path: Path) -> Iterator[tuple[int, str]]:
    """The file's lines (numbered from 1, line endings kept), each decoded as UTF-8 on its own so that an
    undecodable byte is reported with its line."""
    shown = printable(str(path))
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise InputError(f"{shown}: source file not found") from None
    except OSError as exc:
        raise InputError(f"{shown}: the source file cannot be read ({exc.strerror})") from None
    if stat.S_ISDIR(mode):
        raise InputError(
            f"{shown}: the source is a directory, not a file; point at a .jsonl or .csv file in it"
        )
    if not stat.S_ISREG(mode):
        # Opening a FIFO waits for a writer, possibly forever; a device never ends.
        kind = "a FIFO (named pipe)" if stat.S_ISFIFO(mode) else "not a regular file"
        raise InputError(f"{shown}: the source is {kind}; write the rows to a regular file and point at that")
    with path.open("rb") as handle:
        for lineno, raw in enumerate(handle, start=1):
            try:
                yield lineno, raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                raise InputError(
                    f"{shown}:{lineno}: the line is not UTF-8 text (byte 0x{raw[exc.start]:02x} at column "
                    f"{exc.start + 1}); save the file as UTF-8"
                ) from exc


@dataclass(frozen=True)
class JsonlSource:
    """Rows from a JSON Lines file, one JSON object per line; blank lines are skipped."""

    path: str | Path
    key_field: str | None = None

    def describe(self) -> str:
        """The file's path, with bytes that are not UTF-8 escaped."""
        return printable(str(self.path))

    def read(self) -> Iterator[tuple[str, DatasetRow]]:
        """Every row with its `file:line`; an `InputError` naming the line for malformed JSON or a bad row."""
        shown = self.describe()
        for lineno, line in _text_lines(Path(self.path)):
            text = line.rstrip("\r\n")
            if not text.strip():
                continue
            where = f"{shown}:{lineno}"
            try:
                record = json.loads(text)
            except json.JSONDecodeError as exc:
                raise InputError(f"{where}: malformed JSON ({exc.msg} at column {exc.colno})") from exc
            except RecursionError:
                raise too_deep(where, "the line", _text_nesting_depth(text)) from None
            yield where, row_from_mapping(record, where, self.key_field)


def _csv_cell(value: str, where: str, column: str) -> Any:
    text = value.strip()
    if text[:1] in "{[":
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return value
        except RecursionError:
            raise too_deep(where, f"column {column!r}", _text_nesting_depth(text)) from None
    return value


def _check_header(path: str, fieldnames: list[str] | None) -> list[str]:
    if not fieldnames or "input" not in fieldnames:
        raise InputError(f"{path}:1: the CSV header has no 'input' column")
    first: dict[str, int] = {}
    for number, name in enumerate(fieldnames, start=1):
        if name in first:
            raise InputError(
                f"{path}:1: the CSV header names column {name!r} twice (columns {first[name]} and {number}); "
                "give every column a unique name"
            )
        first[name] = number
    return fieldnames


def _csv_rows(reader: csv.DictReader[str], path: str, header: bool = False) -> Any:
    """The header (with `header`) or the next row of `reader` (None at the end); a CSV syntax error is an
    `InputError` naming the line."""
    try:
        return reader.fieldnames if header else next(reader, None)
    except csv.Error as exc:
        raise InputError(f"{path}:{reader.line_num}: malformed CSV ({exc})") from None


@dataclass(frozen=True)
class CsvSource:
    """Rows from a CSV file with a header.

    Columns `input` (required) and `expected` become the row's fields (cells holding a JSON object or array
    are parsed); `tags` is split on `|`; every other column (but the key field) goes into `metadata`.
    """

    path: str | Path
    key_field: str | None = None

    def describe(self) -> str:
        """The file's path, with bytes that are not UTF-8 escaped."""
        return printable(str(self.path))

    def read(self) -> Iterator[tuple[str, DatasetRow]]:
        """Every row with its `file:line`; an `InputError` naming the line for a ragged line or a bad cell."""
        path = self.describe()
        if csv.field_size_limit() < CSV_FIELD_LIMIT:
            csv.field_size_limit(CSV_FIELD_LIMIT)
        reader = csv.DictReader(line for _, line in _text_lines(Path(self.path)))
        columns = len(_check_header(path, _csv_rows(reader, path, header=True)))
        while (cells := _csv_rows(reader, path)) is not None:
            where = f"{path}:{reader.line_num}"
            given = (
                columns + len(cells[None]) if None in cells else sum(v is not None for v in cells.values())
            )
            if given != columns:
                raise InputError(
                    f"{where}: the line has {given} cells, the header has {columns}; quote cells that "
                    "contain commas"
                )
            record: dict[str, Any] = {"input": _csv_cell(cells["input"] or "", where, "input")}
            metadata: dict[str, Any] = {}
            for column, value in cells.items():
                if column == "input" or value is None:
                    continue
                if column == "expected":
                    record["expected"] = _csv_cell(value, where, column) if value != "" else None
                elif column == "tags":
                    record["tags"] = [t.strip() for t in value.split("|") if t.strip()]
                elif column == self.key_field:
                    record[column] = value
                else:
                    metadata[column] = _csv_cell(value, where, column)
            record["metadata"] = metadata
            yield where, row_from_mapping(record, where, self.key_field)


@dataclass(frozen=True)
class IterableSource:
    """Rows from a Python callable returning an iterable of dicts (or `DatasetRow`s)."""

    fn: Callable[[], Iterable[Any]]
    key_field: str | None = None

    def describe(self) -> str:
        """The callable's qualified name."""
        return getattr(self.fn, "__qualname__", repr(self.fn))

    def read(self) -> Iterator[tuple[str, DatasetRow]]:
        """Every row the callable returns, with its position (`row N`); an `InputError` naming it for a bad row."""
        for index, record in enumerate(self.fn(), start=1):
            where = f"{self.describe()} row {index}"
            yield where, row_from_mapping(record, where, self.key_field)


def as_source(
    source: RowSource | str | Path | Callable[[], Iterable[Any]], key_field: str | None = None
) -> RowSource:
    """Turn a path (`.jsonl`/`.json`/`.csv`) or a callable into a `RowSource`."""
    if isinstance(source, RowSource):
        return source
    if isinstance(source, str | Path):
        suffix = Path(source).suffix.lower()
        if suffix in (".jsonl", ".ndjson", ".json"):
            return JsonlSource(source, key_field)
        if suffix == ".csv":
            return CsvSource(source, key_field)
        raise InputError(f"{source}: unsupported source file type {suffix!r}; use .jsonl or .csv")
    if callable(source):
        return IterableSource(source, key_field)
    raise InputError(f"unsupported row source {source!r}")


def empty_source_error(source: RowSource) -> InputError:
    return InputError(
        f"{source.describe()}: the source has no rows; syncing it would remove every row of the dataset "
        "(add rows, or delete the dataset on the platform to empty it)"
    )


def duplicate_keys_error(source: RowSource, duplicates: Mapping[str, list[str]], count: int) -> InputError:
    """The error for `count` duplicated ids; `duplicates` maps (at least the first 20) to their places."""
    lines = [f"  {row_id!r}: {', '.join(places)}" for row_id, places in list(duplicates.items())[:20]]
    more = f"\n  … and {count - 20} more" if count > 20 else ""
    return InputError(
        f"{source.describe()}: {count} duplicate row key(s) — each row needs a unique key "
        "(identical rows without a key field count as duplicates):\n" + "\n".join(lines) + more
    )


def load_rows(source: RowSource) -> list[DatasetRow]:
    """Read every row of a source, failing on duplicate ids with the locations of each duplicate.

    This holds the whole source in memory; `dagster_evals.engine.sync.scan_source` checks a source of any size
    in bounded memory.
    """
    rows: list[DatasetRow] = []
    seen: dict[str, str] = {}
    duplicates: dict[str, list[str]] = {}
    for where, row in source.read():
        if row.id in seen:
            duplicates.setdefault(row.id, [seen[row.id]]).append(where)
            continue
        seen[row.id] = where
        rows.append(row)
    if not rows:
        raise empty_source_error(source)
    if duplicates:
        raise duplicate_keys_error(source, duplicates, len(duplicates))
    return rows
