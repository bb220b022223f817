"""The peer: the quality suite with GX 1.24.1 on a pandas frame, the way many teams start.

``python bench/quality_peer.py STAGED --suite bench/quality_suite.json --out DIR`` reads the
staged Parquet into pandas with pyarrow (``DATE`` columns as ``datetime64``: GX on pandas cannot
compare ``datetime.date`` values with its ISO bounds; decimals stay ``Decimal`` objects; the row
key ``_govdata_row`` as the index, so the schema expectations see the dataset's own columns, as
the gate's ``dataset`` view does), validates it with GX on a pandas datasource with the same
suite file (``import expectations.custom`` registers the custom expectations; their pandas
implementations call the reference checks in :mod:`pipelines.identifiers` per value), result
format ``COMPLETE`` to learn every failing row of the failed row-level expectations, and writes
those as ``DIR/peer_failures.parquet`` (row key, suite index). It prints one JSON line with
every expectation's outcome in suite order and the time of each phase.

Row-level vs dataset-level is the pipeline's rule (:func:`pipelines.suites.is_row_level`).
An expectation GX could not evaluate stops the peer with GX's message: a count from a failed
metric would not be comparable.
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

import pandas as pd
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(REPO))

from pipelines.suites import is_row_level  # noqa: E402  (light: no GX)

ROW = "_govdata_row"
FAILURES_FILE = "peer_failures.parquet"


def validate(frame: pd.DataFrame, entries: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[int, list[int]]]:
    """GX on pandas: the outcomes (suite order) and {suite index: failing row keys} of failed row-level ones."""
    from great_expectations.core import ExpectationSuite
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    from expectations import engine

    context = engine.ephemeral_context()
    source = context.data_sources.add_pandas("peer")
    asset = source.add_dataframe_asset("staged")
    batch = asset.add_batch_definition_whole_dataframe("all").get_batch(batch_parameters={"dataframe": frame})
    configs = [
        ExpectationConfiguration(type=e["type"], kwargs=e.get("kwargs") or {}, meta={"index": i}).to_domain_obj()
        for i, e in enumerate(entries)
    ]
    suite = ExpectationSuite(name="peer", expectations=configs)
    result = batch.validate(suite, result_format={"result_format": "COMPLETE"})
    outcomes: list[dict[str, Any]] = []
    failing: dict[int, list[int]] = {}
    for evr in sorted(result.results, key=lambda r: int(r.expectation_config.meta["index"])):
        index = int(evr.expectation_config.meta["index"])
        entry = entries[index]
        info = evr.exception_info or {}
        problems = [info] if "raised_exception" in info else [v for v in info.values() if isinstance(v, dict)]
        raised = [p for p in problems if p.get("raised_exception")]
        if raised:
            raise SystemExit(f"GX on pandas could not evaluate expectations[{index}] {entry}: {raised[0]}")
        res = evr.result or {}
        kwargs = entry.get("kwargs") or {}
        row_level = is_row_level(entry)
        outcomes.append(
            {
                "index": index,
                "type": entry["type"],
                "column": kwargs.get("column") if isinstance(kwargs.get("column"), str) else None,
                "success": bool(evr.success),
                "row_level": row_level,
                "unexpected_count": int(res.get("unexpected_count") or 0),
                "observed_value": _plain(res.get("observed_value")),
            }
        )
        if row_level and not evr.success:
            failing[index] = [
                int(item[ROW] if isinstance(item, dict) else item) for item in res.get("unexpected_index_list") or []
            ]
    return outcomes, failing


def _plain(value: Any) -> Any:
    """numpy scalars and other GX values as JSON-safe Python values."""
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def run(staged: Path, suite_path: Path, out_dir: Path) -> dict[str, Any]:
    times: dict[str, float] = {}
    out_dir.mkdir(parents=True, exist_ok=True)
    entries = json.loads(suite_path.read_text(encoding="utf-8"))["expectations"]

    started = time.perf_counter()
    # DATE columns as datetime64: GX on pandas cannot compare datetime.date values with its ISO bounds.
    frame = pq.read_table(staged).to_pandas(date_as_object=False).set_index(ROW)
    times["read_parquet"] = time.perf_counter() - started

    started = time.perf_counter()
    import expectations.custom  # noqa: F401  GX and the custom expectations (~10 s)

    times["gx_import"] = time.perf_counter() - started
    started = time.perf_counter()
    outcomes, failing = validate(frame, entries)
    times["gx_validate"] = time.perf_counter() - started

    started = time.perf_counter()
    rows = [row for index in sorted(failing) for row in failing[index]]
    which = [index for index in sorted(failing) for _ in failing[index]]
    pd.DataFrame({ROW: pd.array(rows, dtype="int64"), "expectation_index": pd.array(which, dtype="int64")}).to_parquet(
        out_dir / FAILURES_FILE, compression="zstd", index=False
    )
    times["write_failures"] = time.perf_counter() - started
    return {
        "system": "GX on pandas",
        "rows": len(frame),
        "expectations": outcomes,
        "failing_rows": len(set(rows)),
        "failures": str(out_dir / FAILURES_FILE),
        "times": {k: round(v, 3) for k, v in times.items()},
        "maxrss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "pandas": pd.__version__,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("staged", type=Path, help="the staged Parquet (bench/quality_generate.py)")
    parser.add_argument("--suite", type=Path, required=True, help="the suite JSON")
    parser.add_argument("--out", type=Path, required=True, help="folder for peer_failures.parquet")
    args = parser.parse_args(argv)
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    print(json.dumps(run(args.staged, args.suite, args.out), ensure_ascii=False, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
