"""The floor (b): the plainest conversion of the GB18030 CSV to Parquet, transcoding included.

``python bench/floor_duckdb.py CSV --out DIR``:

1. stream-transcodes the file from GB18030 to UTF-8 in 16 MiB chunks with an incremental
   decoder (the same codec and chunk size the csv connector uses, without its bookkeeping:
   no sha256, no counting of undecodable bytes, no line accounting) into a temporary file;
2. converts it with one DuckDB statement:
   ``COPY (SELECT * FROM read_csv(..., all_varchar=true)) TO '.../data.parquet'`` (zstd, as the
   pipeline writes its Parquet).

No cleansing, no types, no quality gate: the least work any pipeline must do to get this file
into Parquet. It prints one JSON line with the row count and the time of each part.
"""

from __future__ import annotations

import argparse
import codecs
import json
import resource
import sys
import time
from pathlib import Path

import duckdb

CHUNK = 16 * 1024 * 1024


def transcode(src: Path, dst: Path, encoding: str = "gb18030") -> int:
    """Write ``src`` (in ``encoding``) to ``dst`` as UTF-8; return the bytes read."""
    decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
    read = 0
    with src.open("rb") as fin, dst.open("wb") as fout:
        while chunk := fin.read(CHUNK):
            read += len(chunk)
            fout.write(decoder.decode(chunk).encode("utf-8"))
        fout.write(decoder.decode(b"", final=True).encode("utf-8"))
    return read


def _lit(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def convert(text: Path, target: Path) -> int:
    """``text`` (UTF-8 CSV) to ``target`` (Parquet, every column VARCHAR); return the row count."""
    with duckdb.connect() as con:
        con.execute(
            f"COPY (SELECT * FROM read_csv({_lit(text)}, all_varchar = true)) TO {_lit(target)} "
            "(FORMAT parquet, COMPRESSION zstd)"
        )
        rows = con.execute(f"SELECT count(*) FROM read_parquet({_lit(target)})").fetchone()
    return int(rows[0]) if rows else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("csv", type=Path, help="the GB18030 CSV")
    parser.add_argument("--out", type=Path, required=True, help="output folder (data.parquet)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    text = args.out / "source.utf8.csv"
    started = time.perf_counter()
    size = transcode(args.csv, text)
    transcoded = time.perf_counter()
    rows = convert(text, args.out / "data.parquet")
    done = time.perf_counter()
    text.unlink()
    report = {
        "system": "duckdb floor",
        "rows": rows,
        "bytes": size,
        "times": {"transcode": round(transcoded - started, 3), "duckdb_copy": round(done - transcoded, 3)},
        "maxrss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "duckdb": duckdb.__version__,
    }
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
