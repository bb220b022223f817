"""The cleanse step: spec rules compiled to DuckDB SQL over the landed Parquet.

One pass standardises every value (full-width → half-width, trim, null tokens, upper-case,
resident-ID normalisation, code maps), casts to the declared types and classifies each row:

- a value that cannot be cast (or an unmapped code under ``unmapped: quarantine``) sends the
  row to quarantine with one reason per problem, never to a silent NULL;
- a row matched by a named filter rule is removed and counted under that rule;
- among the remaining rows with a complete primary key, duplicates are removed (keep the first
  row, or the latest by ``dedupe.order_by``) and kept aside with the row that won.

Everything else is staged for the quality gate. Every landed row ends in exactly one of
``staged``, ``cast_failed``, ``filtered`` or ``duplicates``.
"""

from __future__ import annotations

import csv
import difflib
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from connectors.base import ROW_COLUMN, landing_sql
from pipelines.errors import SchemaDriftError, SpecError
from pipelines.identifiers import RESIDENT_ID_CHECK, RESIDENT_ID_WEIGHTS
from pipelines.spec import DUCKDB_TYPES, Column, DatasetSpec
from pipelines.sql import connect, copy_to_parquet, ident, lit, path_lit

REASONS = "_govdata_reasons"
FILTER = "_govdata_filter"
KEPT_ROW = "_govdata_kept_row"

CLASSIFIED_FILE = "classified.parquet"
STAGED_FILE = "staged.parquet"
DUPLICATES_FILE = "duplicates.parquet"
FILTERED_FILE = "filtered.parquet"
CAST_FAILED_FILE = "cast_failed.parquet"

_FULL = "".join(chr(c) for c in range(0xFF01, 0xFF5F)) + "\u3000"
_HALF = "".join(chr(c) for c in range(0x21, 0x7F)) + " "
_BLANKS = " \t\r\n\u3000\u00a0\ufeff"
_EDGE_BLANK = r"^[\s\x{3000}\x{a0}\x{feff}]|[\s\x{3000}\x{a0}\x{feff}]$"
_HAS_FULLWIDTH = "[\\x{FF01}-\\x{FF5E}\\x{3000}]"
# Excel serials of 5+ digits (1927-05-18 onwards): shorter numbers are far more often years or codes.
_EXCEL_SERIAL = r"^\d{5,7}(\.\d+)?$"
_CN_DATE = r"^(\d{4})\s*[年./\-]\s*(\d{1,2})\s*[月./\-]\s*(\d{1,2})\s*日?$"
_CN_DATETIME = (
    r"^(\d{4})\s*[年./\-]\s*(\d{1,2})\s*[月./\-]\s*(\d{1,2})\s*日?[\sT]*(\d{1,2})\s*[:时]\s*(\d{1,2})\s*分?"
    r"(?:\s*:?\s*(\d{1,2})\s*秒?)?$"
)
_TRUE = ("true", "t", "1", "y", "yes", "是", "真")
_FALSE = ("false", "f", "0", "n", "no", "否", "假")


@dataclass(frozen=True)
class CleanseResult:
    """Counts and files of one cleanse run."""

    rows_in: int
    staged: int
    cast_failed: int
    duplicates: int
    filtered: dict[str, int]
    staged_path: Path
    cast_failed_path: Path | None
    duplicates_path: Path | None
    filtered_path: Path | None
    ignored_source_columns: list[str] = field(default_factory=list)
    problems: dict[str, int] = field(default_factory=dict)


def _sql_list(values: list[str] | tuple[str, ...]) -> str:
    return "(" + ", ".join(lit(v) for v in values) + ")"


def _resident_id_upgrade(v: str) -> str:
    """SQL turning a 15-digit resident ID into 18 digits (insert 19, compute the check)."""
    body = f"(substr({v}, 1, 6) || '19' || substr({v}, 7, 9))"
    total = " + ".join(f"CAST(substr({body}, {i + 1}, 1) AS INTEGER) * {w}" for i, w in enumerate(RESIDENT_ID_WEIGHTS))
    return f"({body} || substr({lit(RESIDENT_ID_CHECK)}, (({total}) % 11) + 1, 1))"


def _quoted(v: str, col: Column) -> str:
    """SQL for the value shown in a reason; sensitive values are never shown."""
    if col.sensitive:
        return "'the value (sensitive, not shown)'"
    return "'\"' || " + v + " || '\"'"


def _date_expr(v: str) -> str:
    """SQL parsing a text date in the formats DOMAIN.md lists; NULL when it cannot."""
    return (
        "COALESCE("
        # ISO first: the common case, and COALESCE evaluates later arguments only for rows still NULL.
        f"CASE WHEN regexp_matches({v}, '^\\d{{4}}-\\d{{2}}-\\d{{2}}$') THEN try_cast({v} AS DATE) END, "
        f"CASE WHEN regexp_matches({v}, {lit(_CN_DATE)}) THEN try_cast(regexp_replace({v}, {lit(_CN_DATE)}, "
        f"'\\1-\\2-\\3') AS DATE) END, "
        f"CASE WHEN regexp_matches({v}, '^\\d{{8}}$') THEN try_cast(try_strptime({v}, '%Y%m%d') AS DATE) END, "
        f"CASE WHEN regexp_matches({v}, {lit(_EXCEL_SERIAL)}) AND try_cast({v} AS DOUBLE) <= 2958465 "
        f"THEN DATE '1899-12-30' + CAST(floor(try_cast({v} AS DOUBLE)) AS INTEGER) END, "
        f"CASE WHEN regexp_matches({v}, '^\\d{{4}}-\\d{{1,2}}-\\d{{1,2}}[ T]00:00(:00(\\.0+)?)?$') "
        f"THEN try_cast(try_cast({v} AS TIMESTAMP) AS DATE) END)"
    )


def _timestamp_expr(v: str) -> str:
    return (
        "COALESCE("
        f"CASE WHEN regexp_matches({v}, '^\\d{{4}}-\\d{{1,2}}-\\d{{1,2}}([ T].*)?$') THEN try_cast({v} AS TIMESTAMP) END, "
        f"CASE WHEN regexp_matches({v}, {lit(_CN_DATETIME)}) THEN try_cast(regexp_replace({v}, {lit(_CN_DATETIME)}, "
        f"'\\1-\\2-\\3 \\4:\\5:' || coalesce(nullif(regexp_extract({v}, {lit(_CN_DATETIME)}, 6), ''), '00')) "
        "AS TIMESTAMP) END, "
        f"CASE WHEN regexp_matches({v}, '^\\d{{14}}$') THEN try_strptime({v}, '%Y%m%d%H%M%S') END, "
        f"CAST({_date_expr(v)} AS TIMESTAMP))"
    )


def _cast_expr(col: Column, v: str, source_type: str) -> str:
    """SQL casting the standardised value ``v`` to the column's type (NULL when impossible)."""
    target = DUCKDB_TYPES[col.type]
    text_source = source_type.upper() == "VARCHAR"
    if col.type in ("string", "text"):
        return v if text_source else f"CAST({v} AS VARCHAR)"
    if not text_source:
        if col.type == "date" and source_type.upper().startswith("TIMESTAMP"):
            return f"CAST({v} AS DATE)"
        return f"try_cast({v} AS {target})"
    if col.type == "integer":
        n = f"replace({v}, ',', '')"
        return f"CASE WHEN regexp_matches({n}, '^[+-]?\\d+$') THEN try_cast({n} AS BIGINT) END"
    if col.type in ("float", "decimal", "money"):
        n = f"replace(replace({v}, ',', ''), '¥', '')"
        guard = "'^[+-]?(\\d+\\.?\\d*|\\.\\d+)([eE][+-]?\\d+)?$'"
        return f"CASE WHEN regexp_matches({n}, {guard}) THEN try_cast({n} AS {target}) END"
    if col.type == "boolean":
        return f"CASE WHEN lower({v}) IN {_sql_list(_TRUE)} THEN true WHEN lower({v}) IN {_sql_list(_FALSE)} THEN false END"
    if col.type == "date":
        return _date_expr(v)
    if col.type == "timestamp":
        return _timestamp_expr(v)
    raise AssertionError(col.type)  # pragma: no cover - spec validation forbids other types


class _Compiler:
    """Builds the classification query for one spec over one landed file.

    The query is layered: each layer is a projection over the one before, and every rule refers
    to the previous layer's value by column name. Nesting the rules as one expression instead
    would copy each inner expression into every place that uses it (the date parser alone uses
    its input a dozen times), and DuckDB would evaluate every copy for every row.
    """

    def __init__(self, spec: DatasetSpec, source_types: dict[str, str], con: duckdb.DuckDBPyConnection) -> None:
        self.spec = spec
        self.types = source_types
        self.con = con
        self.columns = spec.columns

    def is_text(self, col: Column) -> bool:
        return self.types[col.source_name].upper() == "VARCHAR"

    @staticmethod
    def value(i: int) -> str:
        return f"_v{i}"

    def layer(self, exprs: dict[int, str], inner: str) -> str:
        """One projection: ``exprs`` replace the values they name, every other value passes through."""
        items = [
            ident(ROW_COLUMN),
            *(f"{exprs.get(i, self.value(i))} AS {self.value(i)}" for i in range(len(self.columns))),
        ]
        return f"SELECT {', '.join(items)} FROM ({inner}) q"

    def standardised(self) -> str:
        """Layers 1-3: half-width and trim; null tokens and upper-case; resident-ID upgrade."""
        rules = self.spec.cleanse
        first = []
        for i, col in enumerate(self.columns):
            v = ident(col.source_name)
            if self.is_text(col):
                if rules.halfwidth:
                    # translate() is slow (~3 s per million values); most values have nothing to convert.
                    v = f"CASE WHEN regexp_matches({v}, {lit(_HAS_FULLWIDTH)}) THEN translate({v}, {lit(_FULL)}, {lit(_HALF)}) ELSE {v} END"
                if rules.trim:
                    # Like translate(), trim() with a character set is slow; most values need no trim.
                    v = f"CASE WHEN regexp_matches({v}, {lit(_EDGE_BLANK)}) THEN trim({v}, {lit(_BLANKS)}) ELSE {v} END"
            first.append(f"{v} AS {self.value(i)}")
        query = f"SELECT {ident(ROW_COLUMN)}, {', '.join(first)} FROM landing"
        second = {}
        third = {}
        for i, col in enumerate(self.columns):
            if not self.is_text(col):
                continue
            v = self.value(i)
            expr = v
            if rules.null_tokens:
                expr = f"CASE WHEN {v} IN {_sql_list(rules.null_tokens)} THEN NULL ELSE {v} END"
            if col.name in rules.upper or col.name in rules.resident_ids:
                expr = f"upper({expr})"
            if expr != v:
                second[i] = expr
            if col.name in rules.resident_ids:
                third[i] = f"CASE WHEN regexp_matches({v}, '^\\d{{15}}$') THEN {_resident_id_upgrade(v)} ELSE {v} END"
        if second:
            query = self.layer(second, query)
        if third:
            query = self.layer(third, query)
        return query

    def code_maps(self, query: str) -> tuple[str, dict[int, str]]:
        """Layer 4: dictionary joins. Returns the query and, per column, its 'unmapped' flag column."""
        flags: dict[int, str] = {}
        exprs: dict[int, str] = {}
        keep: list[str] = []
        joins = []
        for n, cmap in enumerate(self.spec.cleanse.code_maps):
            i = next(k for k, c in enumerate(self.columns) if c.name == cmap.column)
            table = f"govdata_map_{n}"
            pairs = dict(cmap.mapping) if cmap.mapping is not None else _read_dictionary(self.spec, cmap.file or "")
            self.con.execute(f"CREATE TEMP TABLE {table} (src VARCHAR PRIMARY KEY, code VARCHAR)")
            if pairs:
                self.con.executemany(f"INSERT INTO {table} VALUES (?, ?)", list(pairs.items()))
            v = f"q.{self.value(i)}"
            joins.append(f"LEFT JOIN {table} ON {table}.src = {v}")
            code = f"{table}.code"
            exprs[i] = {"keep": f"coalesce({code}, {v})", "null": code, "quarantine": code}[cmap.unmapped]
            if cmap.unmapped == "quarantine":
                flags[i] = f"_unmapped{i}"
                keep += [f"({v} IS NOT NULL AND {code} IS NULL) AS _unmapped{i}", f"{v} AS _before{i}"]
        if not joins:
            return query, flags
        items = [f"q.{ident(ROW_COLUMN)}", *keep]
        items += [
            f"{exprs[i] if i in exprs else 'q.' + self.value(i)} AS {self.value(i)}" for i in range(len(self.columns))
        ]
        return f"SELECT {', '.join(items)} FROM ({query}) q {' '.join(joins)}", flags

    def typed_select(self) -> str:
        """SELECT of typed columns plus the list of reasons for rows that cannot be staged."""
        query, flags = self.code_maps(self.standardised())
        # Layer 5: typed casts beside the standardised text (kept for the reasons).
        items = [ident(ROW_COLUMN), *(f"{f}, _before{i}" for i, f in flags.items())]
        reasons = []
        for i, col in enumerate(self.columns):
            v = self.value(i)
            typed = _cast_expr(col, v, self.types[col.source_name])
            items.append(f"{typed} AS {ident(col.name)}")
            items.append(f"{v} AS _std{i}")
            label = f"{col.title}({col.name})"
            if typed != v:
                what = _quoted(f"_std{i}", col) + " || " + lit(f" as {col.type}")
                reasons.append(
                    f"CASE WHEN _std{i} IS NOT NULL AND {ident(col.name)} IS NULL THEN "
                    f"{lit(f'cast_failed:{label}: cannot read ')} || {what} END"
                )
            if i in flags:
                what = _quoted(f"_before{i}", col) + " || " + lit(" is not in the code dictionary")
                reasons.append(f"CASE WHEN {flags[i]} THEN {lit(f'unmapped_code:{label}: ')} || {what} END")
        reason_list = (
            f"list_filter(list_value({', '.join(reasons)}), lambda r: r IS NOT NULL)" if reasons else "[]::VARCHAR[]"
        )
        names = ", ".join(ident(c.name) for c in self.columns)
        typed_query = f"SELECT {', '.join(items)} FROM ({query}) q"
        # Layer 6: only the published names, the row key and the reasons go on.
        return f"SELECT {ident(ROW_COLUMN)}, {names}, {reason_list} AS {REASONS} FROM ({typed_query}) t"

    def classified(self) -> str:
        typed = self.typed_select()
        rules = self.spec.cleanse
        filt = "NULL"
        if rules.filters:
            whens = " ".join(f"WHEN ({f.where}) THEN {lit(f.name)}" for f in rules.filters)
            filt = f"CASE WHEN len({REASONS}) > 0 THEN NULL {whens} END"
        return f"SELECT *, {filt} AS {FILTER} FROM ({typed})"

    def duplicates(self, classified: str) -> str | None:
        """The removed duplicates and the row each lost to, from the classified rows.

        The window runs over the key, order and row columns only (Parquet reads just those), so
        de-duplication never sorts whole rows; the result is as small as the duplicates.
        """
        pk = self.spec.primary_key
        if not pk:
            return None
        rules = self.spec.cleanse
        eligible = f"len({REASONS}) = 0 AND {FILTER} IS NULL AND " + " AND ".join(f"{ident(k)} IS NOT NULL" for k in pk)
        if rules.dedupe.keep == "latest" and rules.dedupe.order_by:
            order = f"{ident(rules.dedupe.order_by)} DESC NULLS LAST, {ident(ROW_COLUMN)} DESC"
        else:
            order = f"{ident(ROW_COLUMN)} ASC"
        window = f"OVER (PARTITION BY {', '.join(ident(k) for k in pk)} ORDER BY {order})"
        return (
            f"SELECT {ident(ROW_COLUMN)}, winner FROM (SELECT {ident(ROW_COLUMN)}, "
            f"first_value({ident(ROW_COLUMN)}) {window} AS winner FROM {classified} WHERE {eligible}) "
            f"WHERE {ident(ROW_COLUMN)} <> winner"
        )


def _read_dictionary(spec: DatasetSpec, relative: str) -> dict[str, str]:
    path = spec.resolve(relative)
    if not path.is_file():
        raise SpecError(f"{spec.path}: code-map dictionary {path} not found", hint="fix cleanse.code_maps[].file")
    pairs: dict[str, str] = {}
    with path.open(encoding="utf-8-sig", newline="") as fh:
        for lineno, row in enumerate(csv.reader(fh), start=1):
            if not row or (lineno == 1 and row[:2] == ["source", "code"]):
                continue
            if len(row) < 2:
                raise SpecError(f"{path}:{lineno}: a dictionary row needs two fields (source,code), got {row!r}")
            if row[0] in pairs and pairs[row[0]] != row[1]:
                raise SpecError(f"{path}:{lineno}: {row[0]!r} is mapped twice ({pairs[row[0]]!r} and {row[1]!r})")
            pairs[row[0]] = row[1]
    return pairs


def check_schema(spec: DatasetSpec, source_columns: list[str], where: str) -> list[str]:
    """Raise SchemaDriftError when a declared column is missing; return the ignored extras."""
    present = set(source_columns)
    missing = [c for c in spec.columns if c.source_name not in present]
    if missing:
        lines = []
        for col in missing:
            near = difflib.get_close_matches(col.source_name, source_columns, n=1, cutoff=0.5)
            tip = f" (the source has {near[0]!r})" if near else ""
            lines.append(f"  - {col.source_name!r} for column {col.name}{tip}")
        raise SchemaDriftError(
            f"{where}: {len(missing)} column(s) the spec requires are missing from the source:\n" + "\n".join(lines),
            hint=f"the source has: {', '.join(source_columns)}. Fix the export, or the columns' `source` in {spec.path}",
        )
    used = {c.source_name for c in spec.columns} | {ROW_COLUMN}
    return [c for c in source_columns if c not in used]


def cleanse(spec: DatasetSpec, landed: Path, staging_dir: Path, *, where: str) -> CleanseResult:
    """Run the cleanse rules over ``landed`` (a landing ``data.parquet``) into ``staging_dir``."""
    staging_dir.mkdir(parents=True, exist_ok=True)
    con = connect(staging_dir / ".spill")
    try:
        con.execute(f"CREATE VIEW landing AS {landing_sql(landed)}")
        described = con.execute("DESCRIBE landing").fetchall()
        types = {row[0]: str(row[1]) for row in described}
        ignored = check_schema(spec, [r[0] for r in described if r[0] != ROW_COLUMN], where)
        compiler = _Compiler(spec, types, con)
        query = compiler.classified()
        classified = staging_dir / CLASSIFIED_FILE
        try:
            copy_to_parquet(con, query, classified, compression="lz4_raw")  # temporary: read back, then deleted
        except duckdb.Error as exc:
            bad = _which_filter(con, spec)
            if bad:
                raise SpecError(
                    f"{spec.path}: cleanse.filters {bad}: {exc}", hint="fix the rule's SQL `where`"
                ) from exc
            raise
        dups = compiler.duplicates(f"read_parquet({path_lit(classified)})")
        con.execute(
            f"CREATE TEMP TABLE dups AS {dups}"
            if dups
            else f"CREATE TEMP TABLE dups ({ident(ROW_COLUMN)} BIGINT, winner BIGINT)"
        )
        con.execute(
            f"CREATE VIEW c AS SELECT k.*, d.winner AS {KEPT_ROW} FROM read_parquet({path_lit(classified)}) k "
            f"LEFT JOIN dups d USING ({ident(ROW_COLUMN)})"
        )
        counts = con.execute(
            f"SELECT count(*), count(*) FILTER (len({REASONS}) > 0), count(*) FILTER ({KEPT_ROW} IS NOT NULL) FROM c"
        ).fetchone()
        assert counts is not None
        rows_in, cast_failed, duplicates = (int(x) for x in counts)
        filtered = dict(
            con.execute(f"SELECT {FILTER}, count(*) FROM c WHERE {FILTER} IS NOT NULL GROUP BY 1 ORDER BY 1").fetchall()
        )
        problems = dict(
            con.execute(
                f"SELECT split_part(r, ':', 2) || ': ' || split_part(r, ':', 1), count(*) FROM "
                f"(SELECT unnest({REASONS}) AS r FROM c WHERE len({REASONS}) > 0) GROUP BY 1 ORDER BY 2 DESC"
            ).fetchall()
        )
        names = ", ".join([ident(ROW_COLUMN), *(ident(col.name) for col in spec.columns)])
        staged_path = staging_dir / STAGED_FILE
        copy_to_parquet(
            con,
            f"SELECT {names} FROM c WHERE len({REASONS}) = 0 AND {FILTER} IS NULL AND {KEPT_ROW} IS NULL",
            staged_path,
            compression="lz4_raw",  # an intermediate the gate scans once per expectation: cheap to read
        )
        out: dict[str, Path | None] = {}
        for key, cond, extra, file in (
            ("cast", f"len({REASONS}) > 0", f", {REASONS}", CAST_FAILED_FILE),
            ("dup", f"{KEPT_ROW} IS NOT NULL", f", {KEPT_ROW}", DUPLICATES_FILE),
            ("filter", f"{FILTER} IS NOT NULL", f", {FILTER}", FILTERED_FILE),
        ):
            target = staging_dir / file
            target.unlink(missing_ok=True)
            n = {"cast": cast_failed, "dup": duplicates, "filter": sum(filtered.values())}[key]
            out[key] = None
            if n:
                copy_to_parquet(con, f"SELECT {names}{extra} FROM c WHERE {cond}", target)
                out[key] = target
        classified.unlink()
    finally:
        con.close()
    return CleanseResult(
        rows_in=rows_in,
        staged=rows_in - cast_failed - duplicates - sum(filtered.values()),
        cast_failed=cast_failed,
        duplicates=duplicates,
        filtered={str(k): int(v) for k, v in filtered.items()},
        staged_path=staged_path,
        cast_failed_path=out["cast"],
        duplicates_path=out["dup"],
        filtered_path=out["filter"],
        ignored_source_columns=ignored,
        problems={str(k): int(v) for k, v in problems.items()},
    )


def _which_filter(con: duckdb.DuckDBPyConnection, spec: DatasetSpec) -> str | None:
    """Name the filter rule whose SQL does not compile, if any."""
    cols = ", ".join(f"NULL::{DUCKDB_TYPES[c.type]} AS {ident(c.name)}" for c in spec.columns)
    for rule in spec.cleanse.filters:
        try:
            con.execute(f"SELECT count(*) FROM (SELECT {cols}) WHERE ({rule.where})").fetchall()
        except duckdb.Error:
            return f"rule {rule.name!r} ({rule.where!r})"
    return None
