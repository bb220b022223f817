"""The naive peer (c): the same dataset through pandas and GX-on-pandas, the way many teams start.

``python bench/peer_pandas.py SPEC --out DIR`` reads the spec's CSV with
``pandas.read_csv(encoding="gb18030", dtype=str)``, applies the spec's cleanse rules written in
pandas, validates the staged frame with GX 1.24.1 on a pandas datasource with the spec's suite
(including the custom USCC expectation: ``import expectations.custom`` registers it), sets the
failing rows aside and writes the rest with ``DataFrame.to_parquet``. It prints one JSON line
with the row accounting, the failing-row count of every expectation and per-phase times, so
``bench/run.py`` can compare it with ``govdata run`` row for row.

The cleanse rules are those of ``pipelines/cleanse.py`` (DuckDB SQL), re-implemented here and
applied in the same order, per column: full-width → half-width, trim (ASCII and full-width
blanks, NBSP, BOM), null tokens, upper-case, code map (unmapped values kept), then the cast of
the column's type, where a non-empty value that cannot be cast quarantines the row:

- decimal: remove ``,`` and ``¥``; it must match ``[+-]?(\\d+\\.?\\d*|\\.\\d+)([eE][+-]?\\d+)?`` and
  fit DECIMAL(18,4);
- date: the first that works of ``YYYY-MM-DD``, ``YYYY[年./-]M[月./-]D[日]``, ``YYYYMMDD``, an Excel
  serial of 5-7 digits, ``YYYY-M-D 00:00[:00]``;
- timestamp: the first that works of ``YYYY-M-D[ T]H:M[:S[.f]]``,
  ``YYYY[年./-]M[月./-]D[日][ T]H[:时]M[分][[:]S[秒]]``, ``YYYYMMDDHHMMSS``, then the date formats at
  midnight.

Then de-duplication by primary key among the castable rows with a non-null key: the row with the
latest ``order_by`` value wins (NULLs last), ties go to the later row in the file. The gate's
row-level/dataset-level split is the pipeline's: map expectations quarantine their failing rows
(only when the expectation failed), uniqueness, row-count and schema expectations block.

Known limits of the peer (not reached by the generated data): pandas time stamps cover the
years 1677-2262 only, and the ISO time-stamp branch accepts only the shape above where DuckDB's
cast also takes time-zone offsets.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(REPO))

from pipelines.spec import DatasetSpec, load_spec  # noqa: E402  (light: pydantic only)

ROW = "_govdata_row"
_FULL = "".join(chr(c) for c in range(0xFF01, 0xFF5F)) + "\u3000"
_HALF = "".join(chr(c) for c in range(0x21, 0x7F)) + " "
HALFWIDTH = str.maketrans(_FULL, _HALF)
BLANKS = " \t\r\n\u3000\u00a0\ufeff"
# [0-9], not \d: the SQL engine's \d is ASCII-only (RE2), Python's is not.
D = "[0-9]"
S = "[ \t\n\f\r]"  # RE2's \s
NUMBER = rf"[+-]?({D}+\.?{D}*|\.{D}+)([eE][+-]?{D}+)?"
CN_DATE = rf"^({D}{{4}}){S}*[年./\-]{S}*({D}{{1,2}}){S}*[月./\-]{S}*({D}{{1,2}}){S}*日?$"
CN_DATETIME = (
    rf"^({D}{{4}}){S}*[年./\-]{S}*({D}{{1,2}}){S}*[月./\-]{S}*({D}{{1,2}}){S}*日?[ \t\n\f\rT]*({D}{{1,2}}){S}*[:时]"
    rf"{S}*({D}{{1,2}}){S}*分?(?:{S}*:?{S}*({D}{{1,2}}){S}*秒?)?$"
)
ISO_MIDNIGHT = rf"^({D}{{4}})-({D}{{1,2}})-({D}{{1,2}})[ T]00:00(:00(\.0+)?)?$"
ISO_STAMP = rf"^({D}{{4}})-({D}{{1,2}})-({D}{{1,2}})(?:[ T]({D}{{1,2}}):({D}{{1,2}})(?::({D}{{1,2}})(?:\.({D}+))?)?)?$"
EXCEL_SERIAL = rf"^{D}{{5,7}}(\.{D}+)?$"
DECIMAL_LIMIT = 10.0**14  # DECIMAL(18,4): 14 integer digits

#: Expectation types whose failing rows are quarantined (map expectations except uniqueness).
UNIQUENESS = {"expect_column_values_to_be_unique", "expect_compound_columns_to_be_unique"}


def _row_level(kind: str) -> bool:
    return kind.startswith(("expect_column_values_", "expect_column_value_")) and kind not in UNIQUENESS


# --- cleanse ------------------------------------------------------------------------------------


def standardise(s: pd.Series, spec: DatasetSpec, column: str) -> pd.Series:
    rules = spec.cleanse
    if rules.halfwidth:
        s = s.str.translate(HALFWIDTH)
    if rules.trim:
        s = s.str.strip(BLANKS)
    if rules.null_tokens:
        s = s.mask(s.isin(rules.null_tokens))
    if column in rules.upper:
        s = s.str.upper()
    for cmap in rules.code_maps:
        if cmap.column == column and cmap.mapping is not None:
            mapped = s.map(cmap.mapping)
            if cmap.unmapped == "keep":
                s = mapped.where(mapped.notna(), s)
            else:
                s = mapped
    return s


def _ymd(parts: pd.DataFrame, names: tuple[str, ...] = ("year", "month", "day")) -> pd.Series:
    frame = pd.DataFrame({name: pd.to_numeric(parts[i], errors="coerce") for i, name in enumerate(names)})
    return pd.to_datetime(frame, errors="coerce")


def to_decimal(s: pd.Series) -> pd.Series:
    n = s.str.replace(",", "", regex=False).str.replace("¥", "", regex=False)
    ok = n.str.fullmatch(NUMBER).fillna(False).astype(bool)
    value = pd.to_numeric(n.where(ok), errors="coerce").astype("float64")
    return value.where(value.abs() < DECIMAL_LIMIT).round(4)


def to_date(s: pd.Series) -> pd.Series:
    iso = s.where(s.str.fullmatch(f"{D}{{4}}-{D}{{2}}-{D}{{2}}").fillna(False).astype(bool))
    out = pd.to_datetime(iso, format="%Y-%m-%d", errors="coerce")
    out = out.fillna(_ymd(s.str.extract(CN_DATE)))
    eight = s.where(s.str.fullmatch(f"{D}{{8}}").fillna(False).astype(bool))
    out = out.fillna(pd.to_datetime(eight, format="%Y%m%d", errors="coerce"))
    serial = pd.to_numeric(s.where(s.str.match(EXCEL_SERIAL).fillna(False).astype(bool)), errors="coerce")
    serial = serial.where(serial <= 2958465)
    excel = pd.Timestamp("1899-12-30") + pd.to_timedelta(np.floor(serial), unit="D")
    out = out.fillna(excel)
    out = out.fillna(_ymd(s.str.extract(ISO_MIDNIGHT)))
    return out.dt.normalize()


def to_timestamp(s: pd.Series) -> pd.Series:
    iso = s.str.extract(ISO_STAMP)
    matched = iso[0].notna()
    for i in (3, 4, 5):
        iso[i] = iso[i].fillna("0").where(matched)
    out = _ymd(iso, ("year", "month", "day", "hour", "minute", "second"))
    fraction = pd.to_numeric("0." + iso[6].fillna("0"), errors="coerce")
    out = out + pd.to_timedelta(fraction.fillna(0).round(6), unit="s")
    parts = s.str.extract(CN_DATETIME)
    parts[5] = parts[5].fillna("0").where(parts[0].notna())
    out = out.fillna(_ymd(parts, ("year", "month", "day", "hour", "minute", "second")))
    fourteen = s.where(s.str.fullmatch(f"{D}{{14}}").fillna(False).astype(bool))
    out = out.fillna(pd.to_datetime(fourteen, format="%Y%m%d%H%M%S", errors="coerce"))
    return out.fillna(to_date(s))


CASTS = {"decimal": to_decimal, "money": to_decimal, "float": to_decimal, "date": to_date, "timestamp": to_timestamp}


def cleanse(raw: pd.DataFrame, spec: DatasetSpec) -> tuple[pd.DataFrame, pd.Series, pd.Series]:
    """The typed frame, the cast-failure mask and the duplicate mask (both indexed like ``raw``)."""
    typed = pd.DataFrame(index=raw.index)
    failed = pd.Series(False, index=raw.index)
    for col in spec.columns:
        if col.type not in ("string", "text", *CASTS):
            raise NotImplementedError(f"the peer has no cast for type {col.type}")
        v = standardise(raw[col.source_name], spec, col.name)
        if col.type in CASTS:
            cast = CASTS[col.type](v)
            failed |= v.notna() & cast.isna()
            typed[col.name] = cast
        else:
            typed[col.name] = v
    duplicates = pd.Series(False, index=raw.index)
    pk = spec.primary_key
    if pk:
        eligible = ~failed & typed[pk].notna().all(axis=1)
        candidates = typed.loc[eligible, pk]
        dedupe = spec.cleanse.dedupe
        if dedupe.keep == "latest" and dedupe.order_by:
            candidates = candidates.assign(_order=typed.loc[eligible, dedupe.order_by], _row=candidates.index)
            candidates = candidates.sort_values(["_order", "_row"], ascending=[False, False], na_position="last")
        dup = candidates.duplicated(subset=pk, keep="first")
        duplicates.loc[dup.index[dup.to_numpy()]] = True
    return typed, failed, duplicates


# --- the gate -----------------------------------------------------------------------------------


def gate(staged: pd.DataFrame, suite_path: Path) -> tuple[list[dict[str, Any]], dict[int, list[str]]]:
    """Validate with GX on pandas: the outcomes and {row: [failed expectation names]}."""
    from great_expectations.core import ExpectationSuite
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    import expectations.custom  # noqa: F401  registers the custom expectations (imports GX)
    from expectations import engine

    entries = json.loads(suite_path.read_text(encoding="utf-8"))["expectations"]
    context = engine.ephemeral_context()
    source = context.data_sources.add_pandas("peer")
    asset = source.add_dataframe_asset("staged")
    batch = asset.add_batch_definition_whole_dataframe("all").get_batch(batch_parameters={"dataframe": staged})
    configs = [
        ExpectationConfiguration(type=e["type"], kwargs=e.get("kwargs") or {}, meta={"index": i}).to_domain_obj()
        for i, e in enumerate(entries)
    ]
    suite = ExpectationSuite(name="peer", expectations=configs)
    result = batch.validate(suite, result_format={"result_format": "COMPLETE"})
    outcomes: list[dict[str, Any]] = []
    failing: dict[int, list[str]] = {}
    for evr in sorted(result.results, key=lambda r: r.expectation_config.meta["index"]):
        entry = entries[evr.expectation_config.meta["index"]]
        info = evr.exception_info or {}
        if info.get("raised_exception") or any(
            isinstance(v, dict) and v.get("raised_exception") for v in info.values()
        ):
            raise RuntimeError(f"GX could not evaluate {entry}: {info}")
        kwargs = entry.get("kwargs") or {}
        name = entry["type"] + (f"({kwargs['column']})" if isinstance(kwargs.get("column"), str) else "")
        res = evr.result or {}
        row_level = _row_level(entry["type"])
        outcomes.append(
            {
                "name": name,
                "success": bool(evr.success),
                "row_level": row_level,
                "unexpected_count": int(res.get("unexpected_count") or 0),
            }
        )
        if row_level and not evr.success:
            for item in res.get("unexpected_index_list") or []:
                row = int(item[ROW] if isinstance(item, dict) else item)
                failing.setdefault(row, []).append(name)
    return outcomes, failing


# --- the run ------------------------------------------------------------------------------------


def run(spec_path: Path, out_dir: Path, source: Path | None = None) -> dict[str, Any]:
    times: dict[str, float] = {}
    t0 = time.perf_counter()
    spec = load_spec(spec_path)
    options = spec.source.options
    csv_path = source or spec.resolve(options["path"])
    out_dir.mkdir(parents=True, exist_ok=True)

    started = time.perf_counter()
    raw = pd.read_csv(csv_path, encoding="gb18030", dtype=str, keep_default_na=False, na_filter=False)
    raw.index = pd.RangeIndex(1, len(raw) + 1, name=ROW)  # the record ordinal, as the pipeline counts it
    collected = len(raw)
    times["read_csv"] = time.perf_counter() - started

    started = time.perf_counter()
    typed, failed, duplicates = cleanse(raw, spec)
    staged = typed[~failed & ~duplicates]
    times["cleanse"] = time.perf_counter() - started

    started = time.perf_counter()
    import expectations.custom  # noqa: F401  GX and the custom expectations (~10 s)

    times["gx_import"] = time.perf_counter() - started
    started = time.perf_counter()
    outcomes, failing = gate(staged, spec.suite_path())
    times["gx_validate"] = time.perf_counter() - started

    started = time.perf_counter()
    gate_failed = pd.Index(sorted(failing), name=ROW)
    accepted = staged.drop(index=gate_failed)
    quarantine_rows = failed[failed].index.union(gate_failed)
    quarantined = len(quarantine_rows)
    share = quarantined / collected if collected else 0.0
    blocking = [o["name"] for o in outcomes if not o["success"] and not o["row_level"]]
    held = bool(blocking) or share > spec.quality.max_quarantine_share
    reasons = pd.Series({row: "; ".join(names) for row, names in failing.items()}, dtype="str")
    quarantine = raw.loc[quarantine_rows].assign(_reasons=reasons.reindex(quarantine_rows).fillna("cast_failed"))
    quarantine.to_parquet(out_dir / "quarantine.parquet", compression="zstd")
    published = 0
    if not held:
        out = accepted.reset_index(drop=True)
        for col in spec.columns:
            if col.type == "date":
                out[col.name] = out[col.name].dt.date  # decimals stay float64: the naive way
        out = out.sort_values(spec.primary_key or [c.name for c in spec.columns])
        out.to_parquet(out_dir / "data.parquet", compression="zstd", index=False)
        published = len(out)
    times["quarantine_and_write"] = time.perf_counter() - started
    times["total_in_process"] = time.perf_counter() - t0
    return {
        "system": "pandas peer",
        "status": "held" if held else "published",
        "rows": {
            "collected": collected,
            "published": published,
            "quarantined": quarantined,
            "quarantined_detail": {"cast_failed": int(failed.sum()), "failed_expectations": len(gate_failed)},
            "duplicates_removed": int(duplicates.sum()),
            "held": len(accepted) if held else 0,
        },
        "expectations": outcomes,
        "held_because": blocking,
        "times": {k: round(v, 3) for k, v in times.items()},
        "maxrss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "pandas": pd.__version__,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("spec", type=Path, help="the dataset spec (bench/spec.yaml)")
    parser.add_argument("--out", type=Path, required=True, help="output folder (data.parquet, quarantine.parquet)")
    parser.add_argument("--source", type=Path, default=None, help="the CSV (default: the spec's source path)")
    args = parser.parse_args(argv)
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    report = run(args.spec, args.out, args.source)
    print(json.dumps(report, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
