"""Tests of the quality gate: identifier checks, custom expectations, the DuckDB adapter, the gate."""
