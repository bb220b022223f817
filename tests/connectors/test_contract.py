"""The connector contract, run over every connector in ``connectors.REGISTRY``.

Each registered connector needs a fixture factory in ``FIXTURES`` that builds a small source
(3-5 records with Chinese text, a NULL and a date) in a temporary folder; a registered connector
without one fails ``test_every_connector_has_a_fixture`` and every test below.
"""

from __future__ import annotations

import datetime as dt
import socket
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pydantic import BaseModel

from connectors import REGISTRY, connector_class, make_connector
from connectors.base import DATA_FILE, REJECTS_FILE, ROW_COLUMN, CollectResult, read_landing
from pipelines.errors import GovdataError, SourceError, SpecError, TransientError

COLUMNS = ["序号", "姓名", "登记日期", "备注"]
RECORDS: list[tuple[Any, ...]] = [
    (1, "张三", dt.date(2023, 5, 1), "首次登记"),
    (2, "李四", dt.date(2023, 5, 2), None),
    (3, "王𠮷", dt.date(2023, 6, 30), "生僻字姓名"),
    (4, "赵六", None, "日期缺失"),
]


@dataclass
class ContractSource:
    """A small source for one connector, and how to point the connector at a missing one."""

    options: dict[str, Any]
    records: int
    columns: list[str]
    missing_options: dict[str, Any]
    missing_error: type[GovdataError] = SourceError
    env: dict[str, str] = field(default_factory=dict)
    #: the expected ``_govdata_row`` values when they are not 1..N (xlsx: Excel row numbers)
    ordinals: list[int] | None = None
    #: options (and env) whose URL holds a password, to check describe() never shows it
    secret_options: dict[str, Any] | None = None
    secret_env: dict[str, str] = field(default_factory=dict)


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _csv(tmp: Path) -> ContractSource:
    lines = [",".join(COLUMNS)] + [",".join(_text(v) for v in r) for r in RECORDS]
    (tmp / "src.csv").write_bytes(("\r\n".join(lines) + "\r\n").encode("gb18030"))
    return ContractSource(
        options={"path": "src.csv"},
        records=len(RECORDS),
        columns=COLUMNS,
        missing_options={"path": "nope.csv"},
    )


def _xlsx(tmp: Path) -> ContractSource:
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.append(COLUMNS)
    for r in RECORDS:
        ws.append(list(r))
    wb.save(tmp / "src.xlsx")
    return ContractSource(
        options={"path": "src.xlsx"},
        records=len(RECORDS),
        columns=COLUMNS,
        missing_options={"path": "nope.xlsx"},
        ordinals=[2, 3, 4, 5],  # the sheet's row numbers: the header is row 1
    )


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _sql(tmp: Path) -> ContractSource:
    with sqlite3.connect(tmp / "src.db") as con:
        con.execute('CREATE TABLE people ("序号" INTEGER PRIMARY KEY, "姓名" TEXT, "登记日期" DATE, "备注" TEXT)')
        # inserted out of order: the landing is ordered by the primary key
        con.executemany(
            "INSERT INTO people VALUES (?, ?, ?, ?)",
            [(r[0], r[1], r[2].isoformat() if r[2] else None, r[3]) for r in reversed(RECORDS)],
        )
    closed = f"postgresql://govdata@127.0.0.1:{_closed_port()}/test"
    return ContractSource(
        options={"url_env": "CONTRACT_DB_URL", "table": "people"},
        env={"CONTRACT_DB_URL": "sqlite:///src.db"},
        records=len(RECORDS),
        columns=COLUMNS,
        missing_options={"url_env": "CONTRACT_DB_URL", "table": "people"},
        missing_error=TransientError,
        secret_options={"url_env": "CONTRACT_DB_URL", "table": "people"},
        secret_env={"CONTRACT_DB_URL": closed.replace("govdata@", "govdata:s3cr3t-pw@")},
    )


def _parquet(tmp: Path) -> ContractSource:
    table = pa.table(
        {
            "序号": pa.array([r[0] for r in RECORDS], pa.int64()),
            "姓名": [r[1] for r in RECORDS],
            "登记日期": pa.array([r[2] for r in RECORDS], pa.date32()),
            "备注": [r[3] for r in RECORDS],
        }
    )
    pq.write_table(table, tmp / "src.parquet")
    return ContractSource(
        options={"path": "src.parquet"},
        records=len(RECORDS),
        columns=COLUMNS,
        missing_options={"path": "nope.parquet"},
    )


FIXTURES: dict[str, Callable[[Path], ContractSource]] = {
    "csv": _csv,
    "xlsx": _xlsx,
    "sql": _sql,
    "parquet": _parquet,
}


# --- helpers -------------------------------------------------------------------------------------


@pytest.fixture(params=sorted(REGISTRY))
def name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def source(name: str, tmp_path: Path) -> ContractSource:
    factory = FIXTURES.get(name)
    if factory is None:
        pytest.fail(f"connector {name!r} is registered but has no contract fixture in FIXTURES", pytrace=False)
    src_dir = tmp_path / "src"
    src_dir.mkdir()
    return factory(src_dir)


def _collect(name: str, source: ContractSource, base: Path, landing: Path) -> CollectResult:
    connector = make_connector(name, source.options, base_dir=base, env=source.env)
    landing.mkdir(parents=True)
    return connector.collect(landing)


def _all_fields(model: type[BaseModel]) -> list[tuple[str, Any]]:
    found: list[tuple[str, Any]] = []
    for key, info in model.model_fields.items():
        found.append((f"{model.__name__}.{key}", info))
        annotation = info.annotation
        for arg in (annotation, *getattr(annotation, "__args__", ())):
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                found.extend(_all_fields(arg))
    return found


# --- the contract --------------------------------------------------------------------------------


def test_every_connector_has_a_fixture() -> None:
    missing = sorted(set(REGISTRY) - set(FIXTURES))
    assert not missing, f"registered connectors without a contract fixture: {missing}"


def test_connector_class_is_well_formed(name: str) -> None:
    cls = connector_class(name)
    assert cls.name == name
    undescribed = [key for key, info in _all_fields(cls.Options) if not (info.description or "").strip()]
    assert not undescribed, f"options without a description: {undescribed}"
    assert cls.Options.model_config.get("extra") == "forbid"


def test_unknown_option_is_refused_with_a_suggestion(name: str, source: ContractSource, tmp_path: Path) -> None:
    key = next(iter(source.options))
    typo = key + "s"
    options = {**{k: v for k, v in source.options.items() if k != key}, typo: source.options[key]}
    with pytest.raises(SpecError) as err:
        make_connector(name, options, base_dir=tmp_path / "src", env=source.env)
    message = str(err.value)
    assert repr(typo) in message
    assert f"did you mean {key!r}" in message


def test_collect_lands_the_contract(name: str, source: ContractSource, tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    result = _collect(name, source, tmp_path / "src", landing)

    assert result.data_path == landing / DATA_FILE
    assert {p.name for p in landing.iterdir()} <= {DATA_FILE, REJECTS_FILE}, "temporary files left behind"
    table = read_landing(result.data_path)
    assert table.schema.names[0] == ROW_COLUMN
    assert table.schema.field(ROW_COLUMN).type == pa.int64()
    ordinals = table.column(ROW_COLUMN).to_pylist()
    assert None not in ordinals
    assert len(set(ordinals)) == len(ordinals)
    assert ordinals == sorted(ordinals), "rows land in source order"
    assert ordinals == (source.ordinals or list(range(1, len(ordinals) + 1)))
    assert table.num_rows == result.rows
    assert result.rows + result.rejected == source.records
    assert result.columns == source.columns
    assert table.schema.names[1:] == source.columns
    if result.rejected:
        assert result.rejects_path is not None
        rejects = pq.read_table(result.rejects_path)
        assert rejects.schema.names == [ROW_COLUMN, "raw", "reason"]
        assert rejects.num_rows == result.rejected
    else:
        assert result.rejects_path is None
        assert not (landing / REJECTS_FILE).exists()
    assert result.source_sha256 is not None
    assert len(result.source_sha256) == 64

    rows = table.to_pylist()
    names = [r["姓名"] for r in rows]
    assert names == [r[1] for r in RECORDS]
    assert [r["备注"] for r in rows][1] is None
    first_date = rows[0]["登记日期"]
    assert str(first_date) == "2023-05-01"


def test_landing_is_deterministic(name: str, source: ContractSource, tmp_path: Path) -> None:
    first = _collect(name, source, tmp_path / "src", tmp_path / "landing1")
    second = _collect(name, source, tmp_path / "src", tmp_path / "landing2")
    assert pq.read_table(first.data_path).equals(pq.read_table(second.data_path))
    assert (first.rows, first.rejected, first.columns) == (second.rows, second.rejected, second.columns)
    assert first.source_sha256 == second.source_sha256


def test_describe_names_the_source_without_secrets(name: str, source: ContractSource, tmp_path: Path) -> None:
    connector = make_connector(name, source.options, base_dir=tmp_path / "src", env=source.env)
    text = connector.describe()
    assert text and "\n" not in text
    if source.secret_options is not None:
        secret = make_connector(name, source.secret_options, base_dir=tmp_path / "src", env=source.secret_env)
        assert "s3cr3t" not in secret.describe()
        assert "s3cr3t" not in repr(vars(secret).get("options"))


def test_missing_source_is_a_clear_error(name: str, source: ContractSource, tmp_path: Path) -> None:
    env = source.secret_env if source.missing_error is TransientError else source.env
    connector = make_connector(name, source.missing_options, base_dir=tmp_path / "src", env=env)
    landing = tmp_path / "landing"
    landing.mkdir()
    with pytest.raises(source.missing_error) as err:
        connector.collect(landing)
    assert err.value.hint, "errors must say what to do"
    assert "s3cr3t" not in str(err.value)
