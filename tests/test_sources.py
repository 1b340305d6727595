from __future__ import annotations

from pathlib import Path

import pytest

from dagster_evals import CsvSource, InputError, IterableSource, JsonlSource, load_rows
from dagster_evals.engine.sync import scan_source
from tests.conftest import write_jsonl


def test_jsonl_rows_get_stable_ids_from_key_or_content(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "rows.jsonl", [{"id": "a", "input": "x", "expected": "y"}, {"id": 7, "input": "z"}]
    )
    keyed = load_rows(JsonlSource(path, key_field="id"))
    assert [r.id for r in keyed] == ["a", "7"]
    again = load_rows(JsonlSource(path, key_field="id"))
    assert [r.id for r in again] == [r.id for r in keyed]
    unkeyed = load_rows(IterableSource(lambda: [{"input": "z"}, {"input": "w"}]))
    assert unkeyed[0].id != unkeyed[1].id
    assert unkeyed[0].id == load_rows(IterableSource(lambda: [{"input": "z"}]))[0].id


def test_malformed_jsonl_line_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"input": "ok"}\n\n{"input": "broken"\n', encoding="utf-8")
    with pytest.raises(InputError, match=r"bad\.jsonl:3: malformed JSON"):
        load_rows(JsonlSource(path))


def test_row_without_input_names_the_row(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "rows.jsonl", [{"input": 1}, {"expected": "no input"}])
    with pytest.raises(InputError, match=r"rows\.jsonl:2: the row has no 'input' field"):
        load_rows(JsonlSource(path))


def test_wrong_types_and_unknown_fields_name_the_field(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "rows.jsonl", [{"input": 1, "metadata": "oops"}])
    with pytest.raises(InputError, match=r"rows\.jsonl:1: field 'metadata' must be an object"):
        load_rows(JsonlSource(path))
    path = write_jsonl(tmp_path / "rows2.jsonl", [{"input": 1, "expectd": 2}])
    with pytest.raises(InputError, match=r"rows2\.jsonl:1: unknown field\(s\) 'expectd'"):
        load_rows(JsonlSource(path))
    path = write_jsonl(tmp_path / "rows3.jsonl", [{"input": 1, "tags": "a,b"}])
    with pytest.raises(InputError, match="'tags' must be a list of strings"):
        load_rows(JsonlSource(path))


def test_duplicate_keys_are_listed_with_their_lines(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "rows.jsonl",
        [{"id": "a", "input": 1}, {"id": "b", "input": 2}, {"id": "a", "input": 3}, {"id": "b", "input": 4}],
    )
    with pytest.raises(InputError) as err:
        load_rows(JsonlSource(path, key_field="id"))
    text = str(err.value)
    assert "2 duplicate row key(s)" in text
    assert "'a': " in text and "rows.jsonl:1" in text and "rows.jsonl:3" in text
    assert "'b': " in text and "rows.jsonl:4" in text


def test_identical_unkeyed_rows_are_duplicates_not_silently_merged(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "rows.jsonl", [{"input": "same"}, {"input": "same"}])
    with pytest.raises(InputError, match="duplicate row key"):
        load_rows(JsonlSource(path))


def test_missing_key_value_names_the_line(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "rows.jsonl", [{"id": "a", "input": 1}, {"input": 2}])
    with pytest.raises(InputError, match=r"rows\.jsonl:2: the key field 'id' is missing"):
        load_rows(JsonlSource(path, key_field="id"))


def test_csv_source_parses_json_cells_tags_and_metadata(tmp_path: Path) -> None:
    path = tmp_path / "rows.csv"
    path.write_text(
        'id,input,expected,tags,difficulty\nr1,"{""q"": 1}",one,smoke|math,easy\nr2,plain,,,hard\n',
        encoding="utf-8",
    )
    rows = load_rows(CsvSource(path, key_field="id"))
    assert rows[0].id == "r1" and rows[0].input == {"q": 1} and rows[0].expected == "one"
    assert rows[0].tags == ["smoke", "math"] and rows[0].metadata == {"difficulty": "easy"}
    assert rows[1].expected is None


def test_csv_without_input_column_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "rows.csv"
    path.write_text("question,answer\nq,a\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"rows\.csv:1: the CSV header has no 'input' column"):
        load_rows(CsvSource(path))


def test_iterable_source_names_the_row_index() -> None:
    def rows() -> list[object]:
        return [{"input": 1}, "not a dict"]

    with pytest.raises(InputError, match=r"rows row 2: a row must be a JSON object"):
        load_rows(IterableSource(rows))


BAD_SOURCES = {
    "malformed line": ('{"input": "ok"}\n\n{"input": "broken"\n', None),
    "no input": ('{"input": 1}\n{"expected": "no input"}\n', None),
    "duplicate keys": ("".join(f'{{"id": "{k}", "input": {i}}}\n' for i, k in enumerate("abcabca")), "id"),
    "identical unkeyed rows": ('{"input": "same"}\n{"input": "x"}\n{"input": "same"}\n', None),
    "missing key": ('{"id": "a", "input": 1}\n{"input": 2}\n', "id"),
    "empty": ("\n\n", None),
}


@pytest.mark.parametrize("case", sorted(BAD_SOURCES))
def test_streaming_scan_fails_exactly_like_load_rows(tmp_path: Path, case: str) -> None:
    text, key_field = BAD_SOURCES[case]
    path = tmp_path / "rows.jsonl"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InputError) as whole:
        load_rows(JsonlSource(path, key_field=key_field))
    with pytest.raises(InputError) as streamed:
        scan_source(JsonlSource(path, key_field=key_field), chunk_rows=2)  # duplicates span chunks
    assert str(streamed.value) == str(whole.value)


def test_streaming_scan_counts_and_indexes_every_row_of_a_csv(tmp_path: Path) -> None:
    path = tmp_path / "rows.csv"
    path.write_text("id,input\n" + "".join(f"r{i},q{i}\n" for i in range(25)), encoding="utf-8")
    with scan_source(CsvSource(path, key_field="id"), chunk_rows=4) as scanned:
        assert scanned.rows_total == 25
        assert [row_id for row_id, _, _ in scanned.index.actions()] == [f"r{i}" for i in range(25)]
