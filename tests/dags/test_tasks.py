"""The task adapter: which runner step it calls, with which date, and how errors map to Airflow.

A fake runner stands in for ``pipelines.runner`` so these tests stay fast; the real runner is
exercised end to end by ``test_dag_run.py``.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException
from sqlalchemy import exc as sa_exc

import pipelines
from pipelines import lineage
from pipelines.errors import GovdataError, QualityGateHeld, SourceError, SpecError, TransientError

from .helpers import DAG_FILE, STEPS

DAY = dt.datetime(2026, 11, 24, tzinfo=dt.UTC)


@pytest.fixture
def dag_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    """The DAG file imported as a module, over an empty datasets folder."""
    monkeypatch.setenv("GOVDATA_DATASETS_DIR", str(tmp_path))
    spec = importlib.util.spec_from_file_location("govdata_dag_file_under_test", DAG_FILE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    run = types.SimpleNamespace(dag_id="govdata__x", run_id="scheduled__2026-11-24T00:00:00+00:00")
    monkeypatch.setattr(
        module,
        "get_current_context",
        lambda: {"logical_date": DAY, "data_interval_start": DAY - dt.timedelta(days=1), "dag_run": run},
    )
    return module


@pytest.fixture
def fake_runner(monkeypatch: pytest.MonkeyPatch) -> Callable[[Callable[..., dict[str, Any]]], list[tuple[Any, ...]]]:
    """Install a fake ``pipelines.runner`` whose every step calls ``behaviour``; return the calls."""

    def install(behaviour: Callable[..., dict[str, Any]]) -> list[tuple[Any, ...]]:
        calls: list[tuple[Any, ...]] = []
        parents.clear()
        fake = types.ModuleType("pipelines.runner")
        for step in STEPS:

            def step_fn(
                spec_path: str, logical_date: Any, *, home: Any = None, lineage_parent: Any = None, _step: str = step
            ) -> dict[str, Any]:
                calls.append((_step, spec_path, logical_date))
                parents.append(lineage_parent)
                return behaviour()

            setattr(fake, step, step_fn)
        monkeypatch.setitem(sys.modules, "pipelines.runner", fake)
        monkeypatch.setattr(pipelines, "runner", fake, raising=False)
        return calls

    return install


#: The lineage parent each fake step was given, in call order.
parents: list[Any] = []


def _raise(exc: Exception) -> Callable[[], dict[str, Any]]:
    def behaviour() -> dict[str, Any]:
        raise exc

    return behaviour


def test_the_task_gets_the_period_in_the_datasets_time_zone(dag_module: types.ModuleType, fake_runner: Any) -> None:
    calls = fake_runner(dict)
    dag_module.run_step("collect", "x.yaml", "Asia/Shanghai")
    (_, _, when) = calls[0]
    assert when == DAY
    assert when.utcoffset() == dt.timedelta(hours=8)
    assert when.isoformat() == "2026-11-24T08:00:00+08:00"


@pytest.mark.parametrize("step", STEPS)
def test_a_step_calls_its_runner_function_with_the_logical_date(
    dag_module: types.ModuleType, fake_runner: Any, step: str
) -> None:
    calls = fake_runner(lambda: {"dataset": "x", "step": "s", "rows": 3, "at": Path("/data")})
    report = dag_module.run_step(step, "/specs/x.yaml")
    assert calls == [(step, "/specs/x.yaml", DAY)]
    # the DAG run is the parent of the step's lineage events: the same id for every task of the run
    assert parents == [lineage.Parent.of("govdata__x", "scheduled__2026-11-24T00:00:00+00:00")]
    assert report == {"dataset": "x", "step": "s", "rows": 3, "at": "/data"}  # made JSON-safe for XCom


@pytest.mark.parametrize(
    ("context", "expected"),
    [
        ({"logical_date": None, "data_interval_start": DAY}, DAY),
        ({"logical_date": None, "data_interval_start": None, "dag_run": types.SimpleNamespace(run_after=DAY)}, DAY),
    ],
    ids=["interval-start", "run-after"],
)
def test_date_fallbacks_when_a_run_has_no_logical_date(
    dag_module: types.ModuleType,
    fake_runner: Any,
    monkeypatch: pytest.MonkeyPatch,
    context: dict[str, Any],
    expected: dt.datetime,
) -> None:
    calls = fake_runner(dict)
    monkeypatch.setattr(dag_module, "get_current_context", lambda: context)
    dag_module.run_step("collect", "x.yaml")
    assert calls[0][2] == expected


@pytest.mark.parametrize(
    "error",
    [
        QualityGateHeld("x run 2026-11-24 held by the quality gate: 9 of 10 rows quarantined"),
        SpecError("x.yaml:3: unknown key 'depatment'"),
        SourceError("source.csv: row 7 has 3 fields, expected 4"),
    ],
    ids=["gate-held", "spec", "source"],
)
def test_terminal_errors_fail_without_retry(dag_module: types.ModuleType, fake_runner: Any, error: Exception) -> None:
    fake_runner(_raise(error))
    with pytest.raises(AirflowFailException, match=str(error).split(":")[0]) as raised:
        dag_module.run_step("quality", "x.yaml")
    assert raised.value.__cause__ is error


@pytest.mark.parametrize(
    "error",
    [
        TransientError("catalog database not reachable"),
        ConnectionResetError("the exchange closed the connection"),
        TimeoutError("the source database did not answer in 30 s"),
        sa_exc.OperationalError("SELECT 1", {}, Exception("server closed the connection unexpectedly")),
    ],
    ids=["transient", "connection-reset", "timeout", "db-went-away"],
)
def test_transient_errors_propagate_to_be_retried(
    dag_module: types.ModuleType, fake_runner: Any, error: Exception
) -> None:
    fake_runner(_raise(error))
    with pytest.raises(type(error)) as raised:
        dag_module.run_step("catalog", "x.yaml")
    assert raised.value is error


@pytest.mark.parametrize(
    "error",
    [
        GovdataError("the collect step has not run yet"),
        OSError("disk full"),
        KeyError("rows"),
        sa_exc.ProgrammingError("SELECT nope", {}, Exception("column nope does not exist")),
    ],
    ids=["other-govdata", "disk-full", "bug", "bad-sql"],
)
def test_other_errors_fail_at_once(dag_module: types.ModuleType, fake_runner: Any, error: Exception) -> None:
    """A retry would fail the same way and only delay the alert."""
    fake_runner(_raise(error))
    with pytest.raises(AirflowFailException, match=type(error).__name__) as raised:
        dag_module.run_step("catalog", "x.yaml")
    assert raised.value.__cause__ is error
