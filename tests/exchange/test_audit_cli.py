"""``govdata audit verify`` and ``govdata audit export`` end to end, on a workspace with real catalog transitions."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import itertools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from openpyxl import load_workbook
from typer.testing import CliRunner

from catalog import lifecycle
from catalog.models import AuditEvent
from catalog.store import CatalogStore
from exchange import audit
from pipelines.cli import app
from pipelines.spec import load_spec
from pipelines.workspace import Workspace

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "datasets" / "market_regulation" / "enterprise_registry.yaml"
ENTRY = "market_enterprise_registry"
TABLE = AuditEvent.__table__
FIELDS = ["seq", "at", "actor", "action", "subject", "detail", "prev_hash", "hash"]
HOSTILE_OPINION = '=HYPERLINK("http://evil.example","点我")\n第二行\r\n+1 -1 @SUM(A1) 😀𠀀'

cli = CliRunner()


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GOVDATA_USER", raising=False)
    monkeypatch.delenv("GOVDATA_CATALOG_URL", raising=False)
    monkeypatch.delenv("GOVDATA_HOME", raising=False)


def invoke(*args: str) -> Any:
    result = cli.invoke(app, list(args), env={"COLUMNS": "240"})
    assert "Traceback" not in result.output, result.output
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def store_of(home: Path) -> CatalogStore:
    return CatalogStore(Workspace.from_env(home).catalog_url)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A workspace whose log holds users added and a catalog entry walked through its lifecycle."""
    home = tmp_path / "ws"
    store = store_of(home)
    spec = load_spec(SPEC)
    store.register(spec, source="datasets/market_regulation/enterprise_registry.yaml")
    dept = spec.department.uscc
    with store.session() as s:
        lifecycle.add_user(s, "clerk", name="张三", role="staff", department=dept)
        lifecycle.add_user(s, "head", name="李四", role="dept_admin", department=dept)
        lifecycle.add_user(s, "city", name="王五", role="city_admin")
    steps = [
        ("submit", "clerk", None),
        ("return", "city", HOSTILE_OPINION),
        ("submit", "clerk", None),
        ("approve", "city", None),
        ("submit_publication", "head", None),
        ("approve", "city", None),
        ("withdraw", "head", "数据口径调整"),
    ]
    for action, actor, opinion in steps:
        with store.session() as s:
            lifecycle.transition(s, ENTRY, action, actor=actor, opinion=opinion)
    return home


def rows(home: Path) -> list[dict[str, Any]]:
    with store_of(home).engine.connect() as con:
        return [dict(r._mapping) for r in con.execute(sa.select(TABLE).order_by(TABLE.c.seq))]


def execute(home: Path, *statements: str | sa.Executable) -> None:
    with store_of(home).engine.begin() as con:
        for statement in statements:
            con.execute(sa.text(statement) if isinstance(statement, str) else statement)


def recompute(entry: dict[str, Any]) -> str:
    """The documented hash, from an exported entry, without govdata's helpers."""
    doc = {k: entry[k] for k in ("seq", "at", "actor", "action", "subject", "detail", "prev_hash")}
    text = json.dumps(doc, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def check_chain(entries: list[dict[str, Any]], *, whole: bool) -> None:
    """Every listed entry's hash recomputes (also with govdata's canonical); consecutive ones link."""
    for e in entries:
        assert recompute(e) == e["hash"], e
        at = dt.datetime.fromisoformat(e["at"])
        fields = {k: e[k] for k in ("seq", "actor", "action", "subject", "detail", "prev_hash")}
        assert hashlib.sha256(audit.canonical(at=at, **fields)).hexdigest() == e["hash"]
    for before, after in itertools.pairwise(entries):
        if after["seq"] == before["seq"] + 1:
            assert after["prev_hash"] == before["hash"]
    if whole:
        assert [e["seq"] for e in entries] == list(range(1, len(entries) + 1))
        if entries:
            assert entries[0]["prev_hash"] == "0" * 64


# --- readers, written from the documented layouts --------------------------------------------------


def read_jsonl(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    lines = path.read_text(encoding="utf-8").splitlines()
    meta = json.loads(lines[0])
    assert meta["kind"] == "govdata.audit.export"
    return meta, [json.loads(line) for line in lines[1:]]


def _unescape(value: str) -> str:
    return value[1:] if value.startswith("'") else value


def read_csv(path: Path) -> tuple[dict[str, str], list[dict[str, Any]]]:
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")
    with path.open(encoding="utf-8-sig", newline="") as fh:
        found = list(csv.reader(fh))
    meta = {r[1]: _unescape(r[2]) for r in itertools.takewhile(lambda r: r != [], found)}
    header_at = found.index([]) + 1
    header = [h.split(" ")[-1] for h in found[header_at]]
    assert header == FIELDS
    entries = []
    for r in found[header_at + 1 :]:
        e: dict[str, Any] = dict(zip(header, (_unescape(v) for v in r), strict=True))
        e["seq"] = int(e["seq"])
        e["detail"] = json.loads(e["detail"])
        entries.append(e)
    return meta, entries


def read_xlsx(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    wb = load_workbook(path, read_only=True)
    assert wb.sheetnames == ["审计日志", "说明"]
    sheet = list(wb["审计日志"].iter_rows(values_only=True))
    header = [str(h).split(" ")[-1] for h in sheet[0]]
    assert header == FIELDS
    assert all(" " in str(h) and not str(h).isascii() for h in sheet[0])  # Chinese beside the field name
    entries = []
    for r in sheet[1:]:
        e = dict(zip(header, r, strict=True))
        e["detail"] = json.loads(e["detail"])
        entries.append(e)
    about = {str(r[0]): r[2] for r in list(wb["说明"].iter_rows(values_only=True))[1:]}
    wb.close()
    return about, entries


def stored(home: Path) -> list[dict[str, Any]]:
    """The log as exported records, read straight from the table."""
    out = []
    for r in rows(home):
        at = r["at"].replace(tzinfo=dt.UTC) if r["at"].tzinfo is None else r["at"]
        out.append({**r, "at": at.isoformat(timespec="microseconds")})
    return out


# --- verify ---------------------------------------------------------------------------------------


def test_verify_passes_on_the_log_the_catalog_wrote(home: Path) -> None:
    log = rows(home)
    actions = [r["action"] for r in log]
    assert actions.count("catalog.user_add") == 3 and "catalog.withdraw" in actions
    result = invoke("audit", "verify", "--home", str(home))
    assert result.exit_code == 0, result.output
    assert f"{len(log)} entries" in result.output and log[-1]["hash"] in result.output
    as_json = json.loads(invoke("audit", "verify", "--home", str(home), "--json").stdout)
    assert as_json["intact"] is True and as_json["entries"] == len(log)
    assert as_json["head"] == {"seq": len(log), "hash": log[-1]["hash"]} and as_json["problem"] is None


def _swap(home: Path, a: int, b: int) -> None:
    execute(
        home,
        f"UPDATE audit_log SET seq = -1 WHERE seq = {a}",
        f"UPDATE audit_log SET seq = {a} WHERE seq = {b}",
        f"UPDATE audit_log SET seq = {b} WHERE seq = -1",
    )


def _insert_forged(home: Path, at_seq: int) -> None:
    """Shift the later entries up and put a well-formed entry, chained to the one before, in the gap."""
    before = rows(home)[at_seq - 2]
    execute(
        home,
        f"UPDATE audit_log SET seq = seq + 100000 WHERE seq >= {at_seq}",
        "UPDATE audit_log SET seq = seq - 99999 WHERE seq >= 100000",
    )
    at = dt.datetime.now(dt.UTC)
    forged = {
        "seq": at_seq,
        "at": at,
        "actor": "city",
        "action": "catalog.approve_publication",
        "subject": f"catalog_entry:{ENTRY}",
        "detail": {"entry": ENTRY, "to": "published"},
        "prev_hash": before["hash"],
    }
    digest = hashlib.sha256(audit.canonical(**forged)).hexdigest()
    execute(home, sa.insert(AuditEvent).values(**forged, hash=digest))


TAMPERING: dict[str, tuple[Callable[[Path], None], int, str]] = {
    "edit a detail": (
        lambda home: execute(home, "UPDATE audit_log SET detail = json_set(detail, '$.opinion', '同意') WHERE seq = 5"),
        5,
        "edited",
    ),
    "edit the actor": (lambda home: execute(home, "UPDATE audit_log SET actor = 'head' WHERE seq = 7"), 7, "edited"),
    "delete an entry": (lambda home: execute(home, "DELETE FROM audit_log WHERE seq = 6"), 7, "removed"),
    "delete and renumber": (
        lambda home: execute(
            home, "DELETE FROM audit_log WHERE seq = 6", "UPDATE audit_log SET seq = seq - 1 WHERE seq > 6"
        ),
        6,
        "removed",
    ),
    "swap two entries' seq": (lambda home: _swap(home, 5, 6), 5, "reordered"),
    "insert a forged entry": (lambda home: _insert_forged(home, 6), 7, "inserted"),
    "append a forged entry with a made-up hash": (
        lambda home: execute(
            home,
            sa.insert(AuditEvent).values(
                seq=len(rows(home)) + 1,
                at=dt.datetime.now(dt.UTC),
                actor="city",
                action="catalog.approve_publication",
                subject=f"catalog_entry:{ENTRY}",
                detail={},
                prev_hash=rows(home)[-1]["hash"],
                hash="f" * 64,
            ),
        ),
        11,
        "edited",
    ),
}


@pytest.mark.parametrize("case", list(TAMPERING))
def test_verify_names_the_entry_and_the_kind_of_tampering(home: Path, case: str) -> None:
    tamper, seq, kind = TAMPERING[case]
    assert len(rows(home)) == 10  # 3 users + 7 transitions: the seqs above refer to this log
    assert invoke("audit", "verify", "--home", str(home)).exit_code == 0
    tamper(home)
    result = invoke("audit", "verify", "--home", str(home))
    assert result.exit_code == 1, result.output
    assert f"broken at entry {seq} ({kind})" in result.stderr
    assert "changed outside govdata" in result.stderr and "backup" in result.stderr and "export" in result.stderr
    assert f"entry {seq} (" in result.stderr  # what differs, at that entry
    as_json = json.loads(invoke("audit", "verify", "--home", str(home), "--json").stdout)
    assert as_json["intact"] is False
    assert as_json["problem"]["seq"] == seq and as_json["problem"]["kind"] == kind
    assert as_json["problem"]["differs"] and as_json["hint"]


def test_verify_explains_what_differs(home: Path) -> None:
    _insert_forged(home, 6)
    result = invoke("audit", "verify", "--home", str(home))
    assert "entry 6 was inserted later" in result.stderr
    assert "the hash of entry 5" in result.stderr
    execute(home, "DELETE FROM audit_log WHERE seq = 3", "UPDATE audit_log SET seq = seq - 1 WHERE seq > 3")
    result = invoke("audit", "verify", "--home", str(home))
    assert "broken at entry 3 (removed)" in result.stderr and "which no entry in the log has" in result.stderr


def test_verify_reports_an_unreadable_value_without_a_traceback(home: Path) -> None:
    execute(home, "UPDATE audit_log SET detail = 'not json' WHERE seq = 4")
    result = invoke("audit", "verify", "--home", str(home))
    assert result.exit_code == 1
    assert "cannot be read" in result.stderr and "backup" in result.stderr


# --- export ---------------------------------------------------------------------------------------

READERS = {"jsonl": read_jsonl, "csv": read_csv, "xlsx": read_xlsx}


@pytest.mark.parametrize("fmt", list(READERS))
def test_export_round_trips_every_field_and_the_chain_recomputes(home: Path, tmp_path: Path, fmt: str) -> None:
    target = tmp_path / f"audit.{fmt}"
    result = invoke("audit", "export", "--format", fmt, "--output", str(target), "--home", str(home))
    assert result.exit_code == 0, result.output
    meta, entries = READERS[fmt](target)
    log = stored(home)
    assert entries == [{k: r[k] for k in FIELDS} for r in log]
    check_chain(entries, whole=True)
    assert any(e["detail"].get("opinion") == HOSTILE_OPINION for e in entries)
    head = log[-1]
    if fmt == "jsonl":
        assert meta["head"] == {"seq": head["seq"], "hash": head["hash"]}
        assert meta["entries_in_log"] == meta["entries_exported"] == len(log)
        assert meta["subset"] is False and meta["filters"] == {} and meta["chain_verified"] is True
    else:
        assert int(meta["head_seq"]) == head["seq"] and meta["head_hash"] == head["hash"]
        assert int(meta["entries_in_log"]) == int(meta["entries_exported"]) == len(log)
        assert meta["subset"] == "no" and meta["filters"] == "none" and meta["chain_verified"] == "yes"
        assert "sha256" in meta["hash_algorithm"]


@pytest.fixture
def hostile(home: Path) -> Path:
    """Entries whose own text fields start like formulas, hold newlines and characters beyond the BMP."""
    with store_of(home).session() as s:
        audit.append(s, actor="=cmd|' /C calc'!A0", action="+catalog.test", subject="@subject\n第二行 😀", detail={})
        audit.append(s, actor="-2+3", action="'quoted", subject="𠀀 non-BMP", detail={"x": "\t=1", "y": [None, 1.5]})
    return home


@pytest.mark.parametrize("fmt", list(READERS))
def test_hostile_values_survive_and_stay_text(hostile: Path, tmp_path: Path, fmt: str) -> None:
    target = tmp_path / f"audit.{fmt}"
    assert invoke("audit", "export", "-o", str(target), "--home", str(hostile)).exit_code == 0
    _, entries = READERS[fmt](target)
    assert entries == [{k: r[k] for k in FIELDS} for r in stored(hostile)]
    check_chain(entries, whole=True)
    if fmt == "csv":
        raw = target.read_text(encoding="utf-8-sig")
        assert "\n=cmd" not in raw and ",=cmd" not in raw and ",+catalog" not in raw and ",-2+3" not in raw
        assert ",'=cmd" in raw
    if fmt == "xlsx":
        wb = load_workbook(target)  # not read-only: the cells' types
        for row in wb["审计日志"].iter_rows(min_row=2):
            for cell in row:
                assert cell.data_type in ("s", "n"), (cell.coordinate, cell.data_type)
        wb.close()


def test_xlsx_refuses_a_value_it_cannot_hold(home: Path, tmp_path: Path) -> None:
    with store_of(home).session() as s:
        audit.append(s, actor="city", action="catalog.test", subject="bell\x07", detail={})
    target = tmp_path / "audit.xlsx"
    result = invoke("audit", "export", "-o", str(target), "--home", str(home))
    assert result.exit_code == 1
    assert "entry 11" in result.stderr and "subject" in result.stderr and "jsonl" in result.stderr
    assert not target.exists() and not list(tmp_path.glob(".*part"))
    assert invoke("audit", "export", "-o", str(tmp_path / "a.jsonl"), "--home", str(home)).exit_code == 0
    _, entries = read_jsonl(tmp_path / "a.jsonl")
    assert entries[-1]["subject"] == "bell\x07"


def _export(home: Path, target: Path, *options: str) -> Any:
    result = invoke("audit", "export", "-o", str(target), "--home", str(home), *options)
    assert result.exit_code == 0, result.output
    return result


def test_filters_select_a_subset_that_says_so(home: Path, tmp_path: Path) -> None:
    log = stored(home)
    cases = {
        ("--actor", "city"): [r for r in log if r["actor"] == "city"],
        ("--action", "catalog.approve"): [r for r in log if r["action"].startswith("catalog.approve")],
        ("--action", "catalog.user"): [r for r in log if r["action"] == "catalog.user_add"],
        ("--action", "catalog.%"): [],  # a LIKE wildcard is a plain character
        ("--subject", ENTRY): [r for r in log if r["subject"] == f"catalog_entry:{ENTRY}"],
        ("--subject", "user:head"): [r for r in log if r["subject"] == "user:head"],
    }
    for n, ((option, value), expected) in enumerate(cases.items()):
        assert expected or value == "catalog.%"
        target = tmp_path / f"f{n}.jsonl"
        out = _export(home, target, option, value)
        meta, entries = read_jsonl(target)
        assert [e["seq"] for e in entries] == [r["seq"] for r in expected], (option, value)
        assert meta["subset"] is True and meta["filters"] == {option: value}
        assert meta["entries_exported"] == len(expected) and meta["entries_in_log"] == len(log)
        assert meta["head"]["hash"] == log[-1]["hash"] and meta["chain_verified"] is True
        assert f"{len(expected)} of {len(log)} entries" in out.stdout
        check_chain(entries, whole=False)

    target = tmp_path / "subset.csv"
    _export(home, target, "--actor", "city", "--action", "catalog.approve")
    meta_csv, entries = read_csv(target)
    assert meta_csv["subset"] == "yes"
    assert json.loads(meta_csv["filters"]) == {"--actor": "city", "--action": "catalog.approve"}
    assert [e["action"] for e in entries] == ["catalog.approve_registration", "catalog.approve_publication"]


def test_date_filters_take_whole_days(home: Path, tmp_path: Path) -> None:
    today = dt.datetime.now(dt.UTC).date()
    log = stored(home)
    days = {
        ("--since", (today - dt.timedelta(days=1)).isoformat()): len(log),
        ("--until", today.isoformat()): len(log),  # --until with a date includes that day
        ("--since", (today + dt.timedelta(days=1)).isoformat()): 0,
        ("--until", (today - dt.timedelta(days=1)).isoformat()): 0,
    }
    for n, (option, count) in enumerate(days.items()):
        target = tmp_path / f"d{n}.jsonl"
        _export(home, target, *option)
        meta, entries = read_jsonl(target)
        assert len(entries) == meta["entries_exported"] == count, option
    target = tmp_path / "range.jsonl"
    second = log[1]["at"]
    _export(home, target, "--since", second, "--until", log[-1]["at"])  # ISO times: since included, until not
    _, entries = read_jsonl(target)
    assert entries[0]["seq"] <= 2 and entries[-1]["seq"] < log[-1]["seq"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (("--since", "2026/11/24"), "--since '2026/11/24' is not a date"),
        (("--until", "24.11.2026"), "--until '24.11.2026' is not a date"),
        (("--since", "2026-02-30"), "--since '2026-02-30' is not a date"),
        (("--since", "2026-11-25", "--until", "2026-11-24"), "is not before --until"),
        (("--actor", " "), "--actor is empty"),
    ],
)
def test_bad_filters_name_the_value_and_the_format(
    home: Path, tmp_path: Path, options: tuple[str, ...], message: str
) -> None:
    target = tmp_path / "x.jsonl"
    result = invoke("audit", "export", "-o", str(target), "--home", str(home), *options)
    assert result.exit_code == 1
    assert message in result.stderr
    if "not a date" in message:
        assert "YYYY-MM-DD" in result.stderr
    assert not target.exists()


def test_an_existing_file_is_refused_unless_forced(home: Path, tmp_path: Path) -> None:
    target = tmp_path / "audit.csv"
    target.write_text("keep me", encoding="utf-8")
    result = invoke("audit", "export", "-o", str(target), "--home", str(home))
    assert result.exit_code == 1 and "exists already" in result.stderr and "--force" in result.stderr
    assert target.read_text(encoding="utf-8") == "keep me"
    assert invoke("audit", "export", "-o", str(target), "--force", "--home", str(home)).exit_code == 0
    assert len(read_csv(target)[1]) == len(rows(home))

    mismatch = invoke("audit", "export", "--format", "csv", "-o", str(tmp_path / "a.xlsx"), "--home", str(home))
    assert mismatch.exit_code == 1 and "does not match" in mismatch.stderr
    folder = invoke("audit", "export", "-o", str(tmp_path), "--home", str(home))
    assert folder.exit_code == 1 and "is a folder" in folder.stderr


def test_a_broken_chain_is_still_exported_and_says_so(home: Path, tmp_path: Path) -> None:
    _swap(home, 5, 6)
    target = tmp_path / "audit.jsonl"
    result = invoke("audit", "export", "-o", str(target), "--home", str(home))
    assert result.exit_code == 0
    assert "did not verify" in result.stderr and "entry 5" in result.stderr
    meta, entries = read_jsonl(target)
    assert meta["chain_verified"] is False and meta["problem"]["seq"] == 5 and meta["problem"]["kind"] == "reordered"
    assert len(entries) == 10
    for e in entries:  # each entry is still what was written; only the order in the log changed
        if e["seq"] not in (5, 6):
            assert recompute(e) == e["hash"]


@pytest.mark.parametrize("fmt", list(READERS))
def test_an_empty_log(tmp_path: Path, fmt: str) -> None:
    home = tmp_path / "empty"
    store_of(home)
    result = invoke("audit", "verify", "--home", str(home))
    assert result.exit_code == 0 and "empty" in result.output
    as_json = json.loads(invoke("audit", "verify", "--home", str(home), "--json").stdout)
    assert as_json == {"intact": True, "entries": 0, "head": {"seq": 0, "hash": "0" * 64}, "problem": None}
    target = tmp_path / f"empty.{fmt}"
    assert invoke("audit", "export", "-o", str(target), "--home", str(home)).exit_code == 0
    meta, entries = READERS[fmt](target)
    assert entries == []
    if fmt == "jsonl":
        assert meta["entries_exported"] == 0 and meta["head"] == {"seq": 0, "hash": "0" * 64}
        assert meta["chain_verified"] is True
    else:
        assert int(meta["entries_exported"]) == 0 and meta["head_hash"] == "0" * 64
