"""The csv connector on hostile input: encodings, malformed records, odd headers and line endings."""

from __future__ import annotations

import csv
import hashlib
import io
import os
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import connectors.csv as csv_mod
import connectors.encoding as enc
from connectors import make_connector
from connectors.base import DATA_FILE, REJECTS_FILE, ROW_COLUMN, CollectResult, landing_sql, read_landing
from pipelines import background
from pipelines.errors import SourceError, SpecError


def collect(tmp_path: Path, content: bytes | None, *, name: str = "src.csv", **options: Any) -> CollectResult:
    if content is not None:
        (tmp_path / name).write_bytes(content)
    landing = tmp_path / "landing"
    landing.mkdir(exist_ok=True)
    for old in landing.iterdir():
        old.unlink()
    connector = make_connector("csv", {"path": name, **options}, base_dir=tmp_path, env={})
    return connector.collect(landing)


def data(result: CollectResult) -> list[dict[str, Any]]:
    return read_landing(result.data_path).to_pylist()


def rejects(result: CollectResult) -> list[dict[str, Any]]:
    assert result.rejects_path is not None
    return pq.read_table(result.rejects_path).to_pylist()


def gb_rows(n: int, *, bad: set[int] = frozenset()) -> bytes:  # type: ignore[assignment]
    """A GB18030 CSV (id, 姓名, 地址) with ``n`` records; records in ``bad`` get an undecodable byte."""
    out = bytearray("编号,姓名,地址\n".encode("gb18030"))
    for i in range(1, n + 1):
        name = f"张{i}".encode("gb18030")
        if i in bad:
            name = b"\xff" + name  # 0xFF is never valid in GB18030
        out += f"{i},".encode() + name + f",上海市浦东新区{i}号\n".encode("gb18030")
    return bytes(out)


# --- encodings -----------------------------------------------------------------------------------


def test_gb18030_is_detected_and_transcoded(tmp_path: Path) -> None:
    content = "姓名,城市\n王𠮷,上海\n李四,北京\n".encode("gb18030")  # 𠮷 is a four-byte GB18030 character
    result = collect(tmp_path, content)
    assert data(result) == [
        {ROW_COLUMN: 1, "姓名": "王𠮷", "城市": "上海"},
        {ROW_COLUMN: 2, "姓名": "李四", "城市": "北京"},
    ]
    assert result.details["encoding"] == "gb18030"
    assert result.details["encoding_declared"] == "auto"
    assert result.details["bytes"] == len(content)
    assert result.details["undecodable_bytes"] == 0
    assert result.source_sha256 == hashlib.sha256(content).hexdigest()


@pytest.mark.parametrize("declared", ["gbk", "gb2312", "gb18030"])
def test_gbk_and_gb2312_decode_as_gb18030(tmp_path: Path, declared: str) -> None:
    result = collect(tmp_path, "姓名\n王𠮷\n".encode("gb18030"), encoding=declared)
    assert data(result)[0]["姓名"] == "王𠮷"
    assert result.details["encoding"] == "gb18030"


def test_utf8_bom_is_not_kept_in_the_header(tmp_path: Path) -> None:
    result = collect(tmp_path, "\ufeff姓名,日期\n张三,2023-05-01\n".encode())
    assert result.columns == ["姓名", "日期"]
    assert data(result) == [{ROW_COLUMN: 1, "姓名": "张三", "日期": "2023-05-01"}]
    assert result.details["bom"] is True


@pytest.mark.parametrize("declared", ["utf-8", "utf-8-sig"])
def test_declared_utf8_with_bom_strips_it(tmp_path: Path, declared: str) -> None:
    result = collect(tmp_path, "\ufeffa,b\n1,2\n".encode(), encoding=declared)
    assert result.columns == ["a", "b"]


def test_declared_utf8_but_file_is_gb18030(tmp_path: Path) -> None:
    (tmp_path / "gb.csv").write_bytes("姓名,日期\n张三,2023-05-01\n".encode("gb18030"))
    with pytest.raises(SourceError) as err:
        collect(tmp_path, None, name="gb.csv", encoding="utf-8")
    message = str(err.value)
    assert "gb.csv" in message
    assert "GB18030" in message
    assert "line 1" in message
    assert "encoding: gb18030" in (err.value.hint or "")


def test_declared_gbk_but_file_is_utf8(tmp_path: Path) -> None:
    with pytest.raises(SourceError) as err:
        collect(tmp_path, "姓名,日期\n张三,2023-05-01\n".encode(), encoding="gbk")
    assert "UTF-8" in str(err.value)
    assert "utf-8" in (err.value.hint or "")


def test_declared_utf8_ascii_start_then_gb18030(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(csv_mod, "SAMPLE_SIZE", 64)
    monkeypatch.setattr(enc, "CHUNK_SIZE", 256)
    content = b"id,name\n" + b"".join(b"%d,abc\n" % i for i in range(100)) + "9,张三\n".encode("gb18030")
    with pytest.raises(SourceError) as err:
        collect(tmp_path, content, encoding="utf-8")
    assert "GB18030" in str(err.value)
    assert "line 102" in str(err.value)


def test_auto_restarts_as_gb18030_after_an_ascii_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(csv_mod, "SAMPLE_SIZE", 64)
    monkeypatch.setattr(enc, "CHUNK_SIZE", 256)
    content = b"id,name\n" + b"".join(b"%d,abc\n" % i for i in range(100)) + "100,张三\n".encode("gb18030")
    result = collect(tmp_path, content)
    assert result.rows == 101
    assert result.rejected == 0
    assert data(result)[-1]["name"] == "张三"
    assert result.details["encoding"] == "gb18030"


def test_one_percent_undecodable_bytes_are_rejected_exactly(tmp_path: Path) -> None:
    bad = {7, 33, 150, 299}
    result = collect(tmp_path, gb_rows(300, bad=bad))
    assert (result.rows, result.rejected) == (296, 4)
    landed = data(result)
    assert all("\ufffd" not in str(v) for row in landed for v in row.values())
    assert {r["编号"] for r in landed} == {str(i) for i in range(1, 301)} - {str(i) for i in bad}
    # ordinals of the landed records keep their place; the rejected ones carry theirs
    assert [r[ROW_COLUMN] for r in landed] == [i for i in range(1, 301) if i not in bad]
    rej = rejects(result)
    assert [r[ROW_COLUMN] for r in rej] == sorted(bad)
    assert all(r["reason"].startswith(f"record {r[ROW_COLUMN]}: undecodable bytes: not valid gb18030") for r in rej)
    assert rej[0]["raw"].startswith("7,\ufffd")
    assert result.details["undecodable_bytes"] == 4
    assert result.details["first_undecodable"].startswith("line 8, byte offset")


def test_too_many_undecodable_bytes_fail_with_the_likely_encoding(tmp_path: Path) -> None:
    content = gb_rows(50, bad=set(range(1, 51, 2)))
    with pytest.raises(SourceError) as err:
        collect(tmp_path, content, encoding="gb18030", max_undecodable_share=0.001)
    message = str(err.value)
    assert "src.csv" in message
    assert "cannot be decoded as gb18030" in message
    assert "first at line 2" in message
    assert "max_undecodable_share" in (err.value.hint or "")


def test_undetectable_encoding_names_a_guess(tmp_path: Path) -> None:
    content = b"name,city\n" + "Jos\xe9,S\xe3o Paulo,\xff\xfe\n".encode("latin-1") * 200
    with pytest.raises(SourceError) as err:
        collect(tmp_path, content)
    assert "neither UTF-8" in str(err.value)
    assert "re-export" in (err.value.hint or "")


def test_utf16_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="UTF-16"):
        collect(tmp_path, "a,b\n1,2\n".encode("utf-16"))


def test_transcoding_in_tiny_chunks_is_exact(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    content = gb_rows(40, bad={5, 31}).replace(b"\n", b"\r\n") + "41,王𠮷𠮷,长地址\r\n".encode("gb18030")
    whole = collect(tmp_path, content)
    monkeypatch.setattr(enc, "CHUNK_SIZE", 5)  # cuts inside characters, CRLF pairs and lines
    tiny = collect(tmp_path, content)
    assert data(tiny) == data(whole)
    assert rejects(tiny) == rejects(whole)
    for key in ("lines", "undecodable_bytes", "first_undecodable", "blank_lines_skipped"):
        assert tiny.details[key] == whole.details[key], key
    assert tiny.source_sha256 == whole.source_sha256 == hashlib.sha256(content).hexdigest()
    assert data(tiny)[-1]["姓名"] == "王𠮷𠮷"


def test_count_line_breaks() -> None:
    assert enc.count_line_breaks("a\nb\r\nc\rd") == 3
    assert enc.count_line_breaks(b"\r\n\r\n\n") == 3
    assert enc.count_line_breaks("") == 0


# --- files that are not there or not CSV ---------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SourceError) as err:
        collect(tmp_path, None, name="nope.csv")
    assert "nope.csv" in str(err.value)
    assert "not found" in str(err.value)
    assert err.value.hint


def test_directory_instead_of_file(tmp_path: Path) -> None:
    (tmp_path / "folder.csv").mkdir()
    with pytest.raises(SourceError, match="is a directory"):
        collect(tmp_path, None, name="folder.csv")


def test_empty_file(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"empty \(0 bytes\)"):
        collect(tmp_path, b"")


@pytest.mark.parametrize("content", [b"\n\n\n", b"\xef\xbb\xbf", b"\xef\xbb\xbf\r\n"])
def test_file_without_any_line(tmp_path: Path, content: bytes) -> None:
    with pytest.raises(SourceError, match="no records"):
        collect(tmp_path, content)


def test_header_only_is_zero_rows_with_columns(tmp_path: Path) -> None:
    result = collect(tmp_path, "姓名,日期\n".encode("gb18030"))
    assert (result.rows, result.rejected) == (0, 0)
    assert result.columns == ["姓名", "日期"]
    assert read_landing(result.data_path).schema.names == [ROW_COLUMN, "姓名", "日期"]


# --- records -------------------------------------------------------------------------------------


def test_malformed_records_are_rejected_with_line_numbers(tmp_path: Path) -> None:
    content = (
        b"a,b,c\n"  # line 1
        b"1,2,3\n"  # 2
        b"4,5\n"  # 3: too few fields
        b"6,7,8,9\n"  # 4: too many
        b'"x\ny",z,w\n'  # 5-6: embedded newline, fine
        b"10,11,12\n"  # 7
        b'13,"14"x,15\n'  # 8: text after a closing quote
        b"16,17,18\n"  # 9
    )
    result = collect(tmp_path, content)
    assert (result.rows, result.rejected) == (4, 3)
    assert [r["a"] for r in data(result)] == ["1", "x\ny", "10", "16"]
    assert [r[ROW_COLUMN] for r in data(result)] == [1, 2, 3, 4]
    rej = rejects(result)
    assert [(r[ROW_COLUMN], r["raw"]) for r in rej] == [(3, "4,5"), (4, "6,7,8,9"), (8, '13,"14"x,15')]
    assert rej[0]["reason"] == "line 3: expected 3 fields, found 2"
    assert rej[1]["reason"] == "line 4: expected 3 fields, found 4"
    assert rej[2]["reason"].startswith("line 8: malformed quoting")
    assert result.details["malformed_rejects"] == 3


def test_unterminated_quote_at_the_end_is_one_reject(tmp_path: Path) -> None:
    result = collect(tmp_path, b'a,b,c\n1,2,3\n4,"5,6\n7,8,9\n')
    assert (result.rows, result.rejected) == (1, 1)
    (rej,) = rejects(result)
    assert rej[ROW_COLUMN] == 3
    assert rej["raw"] == '4,"5,6\n7,8,9\n'
    assert "quot" in rej["reason"]


def test_lines_lost_by_the_reader_fail_the_collect(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # With small read buffers DuckDB splits the file between threads and, after an unclosed
    # quote, silently skips records. The line accounting must turn that into an error.
    monkeypatch.setattr(csv_mod, "_BUFFER_SIZE", 4096)
    lines = ["id,name,addr,note"] + [
        f"{i},名字{i},上海市{i}号,备注" if i != 300 else f'{i},"unterminated,b,c' for i in range(1, 601)
    ]
    content = ("\n".join(lines) + "\n").encode()
    try:
        result = collect(tmp_path, content)
    except SourceError as err:
        assert "accounted for" in str(err)
        assert "of the file's 601 lines" in str(err)
        assert "quoting" in (err.hint or "")
    else:  # a DuckDB that does not lose the lines: the connector's own accounting passed
        assert result.details["blank_lines_skipped"] == 0
        assert result.rejected >= 1


def test_embedded_newlines_and_crlf(tmp_path: Path) -> None:
    content = '编号,备注\r\n1,"第一行\r\n第二行"\r\n2,"含""引号"",和逗号"\r\n3,\r\n'.encode("gb18030")
    result = collect(tmp_path, content)
    assert [(r["编号"], r["备注"]) for r in data(result)] == [
        ("1", "第一行\r\n第二行"),
        ("2", '含"引号",和逗号'),
        ("3", None),
    ]
    assert result.details["lines"] == 5


def test_lone_lf_inside_a_crlf_file(tmp_path: Path) -> None:
    result = collect(tmp_path, b'a,b\r\n1,"x\ny"\r\n2,z\r\n')
    assert [r["b"] for r in data(result)] == ["x\ny", "z"]


def test_old_mac_line_endings(tmp_path: Path) -> None:
    result = collect(tmp_path, b"a,b\r1,2\r3,4\r")
    assert [(r["a"], r["b"]) for r in data(result)] == [("1", "2"), ("3", "4")]


def test_mixed_line_endings_are_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError) as err:
        collect(tmp_path, b"a,b\n1,2\r\n3,4\n")
    assert "line endings" in str(err.value)
    assert "dos2unix" in (err.value.hint or "")


def test_blank_lines_at_the_end_and_between_records(tmp_path: Path) -> None:
    result = collect(tmp_path, b"a,b\n1,2\n\n3,4\n\n\n\n")
    assert result.rows == 2
    assert result.rejected == 0
    assert [r[ROW_COLUMN] for r in data(result)] == [1, 2]
    assert result.details["blank_lines_skipped"] == 4


def test_blank_lines_before_the_header(tmp_path: Path) -> None:
    result = collect(tmp_path, b"\n\na,b\n1,2\n")
    assert result.columns == ["a", "b"]
    assert data(result) == [{ROW_COLUMN: 1, "a": "1", "b": "2"}]


def test_last_line_without_newline(tmp_path: Path) -> None:
    result = collect(tmp_path, b"a,b\n1,2\n3,4")
    assert [r["a"] for r in data(result)] == ["1", "3"]


def test_whitespace_only_line_is_rejected_not_dropped(tmp_path: Path) -> None:
    result = collect(tmp_path, b"a,b,c\n1,2,3\n   \n4,5,6\n")
    assert (result.rows, result.rejected) == (2, 1)
    assert rejects(result)[0]["reason"] == "line 3: expected 3 fields, found 1"


# --- headers and dialect -------------------------------------------------------------------------


def test_duplicate_and_empty_header_names_are_made_unique(tmp_path: Path) -> None:
    result = collect(tmp_path, "姓名,电话,姓名,,Name,name\n张三,1,2,3,4,5\n".encode())
    assert result.columns == ["姓名", "电话", "姓名_2", "column4", "Name", "name_2"]
    assert result.details["renamed_columns"] == {"3:姓名": "姓名_2", "4:": "column4", "6:name": "name_2"}
    assert data(result)[0]["姓名_2"] == "2"


def test_reserved_column_name(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=ROW_COLUMN):
        collect(tmp_path, f"{ROW_COLUMN},a\n1,2\n".encode())


def test_without_header_columns_are_numbered(tmp_path: Path) -> None:
    result = collect(tmp_path, "张三,1\n李四,2\n".encode(), header=False)
    assert result.columns == ["column1", "column2"]
    assert [r["column1"] for r in data(result)] == ["张三", "李四"]


def test_delimiter_and_quote_options(tmp_path: Path) -> None:
    result = collect(tmp_path, b"a;b\n'x;y';2\n'it''s';3\n", delimiter=";", quote="'")
    assert [(r["a"], r["b"]) for r in data(result)] == [("x;y", "2"), ("it's", "3")]


def test_tab_delimiter(tmp_path: Path) -> None:
    result = collect(tmp_path, "姓名\t电话\n张三\t1380000\n".encode(), delimiter="\t")
    assert data(result) == [{ROW_COLUMN: 1, "姓名": "张三", "电话": "1380000"}]


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"delimiter": ",", "quote": ","}, "differ"),
        ({"delimiter": ";;"}, "delimiter"),
        ({"encoding": "latin-1"}, "encoding"),
        ({"max_undecodable_share": 2}, "max_undecodable_share"),
    ],
)
def test_bad_options_are_spec_errors(tmp_path: Path, options: dict[str, Any], problem: str) -> None:
    with pytest.raises(SpecError, match=problem):
        make_connector("csv", {"path": "x.csv", **options}, base_dir=tmp_path, env={})


def test_temporary_files_are_removed(tmp_path: Path) -> None:
    result = collect(tmp_path, gb_rows(5, bad={2}))
    assert {p.name for p in result.data_path.parent.iterdir()} == {DATA_FILE, REJECTS_FILE}


def test_since_is_ignored_for_files(tmp_path: Path) -> None:
    (tmp_path / "src.csv").write_bytes(b"a\n1\n")
    landing = tmp_path / "landing"
    landing.mkdir()
    connector = make_connector("csv", {"path": "src.csv"}, base_dir=tmp_path, env={})
    result = connector.collect(landing, since="2023-01-01")
    assert result.rows == 1
    assert result.watermark is None


# --- property: whatever Python's csv module writes lands exactly ---------------------------------

_cell = st.one_of(
    st.none(),
    st.text(
        alphabet=st.sampled_from(list("ab ,\"'\n\r\t中文𠮷张三丰;|")),
        min_size=1,
        max_size=8,
    ),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rows=st.lists(st.lists(_cell, min_size=3, max_size=3), min_size=1, max_size=8),
    encoding=st.sampled_from(["utf-8", "gb18030", "utf-8-sig"]),
    terminator=st.sampled_from(["\n", "\r\n"]),
)
def test_roundtrip_of_python_written_csv(
    tmp_path_factory: pytest.TempPathFactory, rows: list[list[str | None]], encoding: str, terminator: str
) -> None:
    tmp = tmp_path_factory.mktemp("prop")
    if terminator == "\n":
        # csv.writer quotes only the characters of its line terminator: a bare CR would be written
        # unquoted, which is a line break to any reader. Keep CR for the CRLF files.
        rows = [[(v.replace("\r", "") or None) if v else v for v in row] for row in rows]
    buf = io.StringIO(newline="")
    writer = csv.writer(buf, lineterminator=terminator)
    writer.writerow(["c1", "c2", "c3"])
    for row in rows:
        writer.writerow(["" if v is None else v for v in row])
    result = collect(tmp, buf.getvalue().encode(encoding))
    # an empty value lands as NULL (the reader cannot tell "" from a missing value)
    expected = [[None if v in (None, "") else v for v in row] for row in rows]
    landed = [[r["c1"], r["c2"], r["c3"]] for r in data(result)]
    assert landed == expected
    assert result.rejected == 0


# --- how the landing numbers its rows, and transcoding beside other work ------------------------


def test_rows_are_numbered_by_position_without_a_stored_column(tmp_path: Path) -> None:
    result = collect(tmp_path, b"a,b\n1,2\n3,4\n5,6\n")
    assert pq.read_schema(result.data_path).names == ["a", "b"]  # the ordinal is the position
    con = duckdb.connect()
    rows = con.execute(f"SELECT * FROM ({landing_sql(result.data_path)}) ORDER BY 1").fetchall()
    assert rows == [(1, "1", "2"), (2, "3", "4"), (3, "5", "6")]
    assert [d[0] for d in con.execute(f"DESCRIBE {landing_sql(result.data_path)}").fetchall()] == [ROW_COLUMN, "a", "b"]


@pytest.mark.parametrize("name", ["file_row_number", "FILE_ROW_NUMBER"])
def test_a_column_named_like_the_position_column_keeps_its_values(tmp_path: Path, name: str) -> None:
    result = collect(tmp_path, f"{name},b\n10,x\n20,y\n".encode())
    assert pq.read_schema(result.data_path).names == [ROW_COLUMN, name, "b"]  # numbered explicitly
    assert data(result) == [{ROW_COLUMN: 1, name: "10", "b": "x"}, {ROW_COLUMN: 2, name: "20", "b": "y"}]
    con = duckdb.connect()
    assert con.execute(f"SELECT * FROM ({landing_sql(result.data_path)}) ORDER BY 1").fetchall() == [
        (1, "10", "x"),
        (2, "20", "y"),
    ]


@pytest.fixture
def transcode_in_child(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every file big enough for the child process, with background work under way."""
    monkeypatch.setattr(enc, "PROCESS_MIN_BYTES", 1)
    monkeypatch.setattr(background, "busy", lambda: True)
    monkeypatch.delenv(enc.PROCESS_ENV, raising=False)


def test_transcoding_in_a_child_process_lands_the_same(tmp_path: Path, transcode_in_child: None) -> None:
    content = gb_rows(300, bad={7, 150})
    (tmp_path / "child").mkdir()
    in_child = collect(tmp_path / "child", content)
    assert enc._in_child_process(tmp_path / "child" / "src.csv")
    os.environ[enc.PROCESS_ENV] = "0"  # the switch that turns the child process off
    try:
        assert not enc._in_child_process(tmp_path / "child" / "src.csv")
        (tmp_path / "here").mkdir()
        in_process = collect(tmp_path / "here", content)
    finally:
        del os.environ[enc.PROCESS_ENV]
    assert data(in_child) == data(in_process)
    assert rejects(in_child) == rejects(in_process)
    assert in_child.details == in_process.details
    assert in_child.source_sha256 == in_process.source_sha256 == hashlib.sha256(content).hexdigest()


def test_errors_cross_the_child_process_with_their_hint(tmp_path: Path, transcode_in_child: None) -> None:
    content = gb_rows(50, bad=set(range(1, 51, 2)))
    with pytest.raises(SourceError) as err:
        collect(tmp_path, content, encoding="gb18030", max_undecodable_share=0.001)
    assert "cannot be decoded as gb18030" in str(err.value)
    assert "max_undecodable_share" in (err.value.hint or "")
