"""The run events of a database delivery (库表交换): the exchange version in, the subscriber's table out.

A delivery is one OpenLineage run of the job ``<entry>.deliver``: START, then COMPLETE or FAIL,
in ``$GOVDATA_HOME/lineage/<entry>/deliveries/<receipt>.jsonl`` by default. Its input is named as
the publish step names its output, so the lineage graph runs from the source to the subscriber;
its output is the subscriber's table, named from the target URL without its user or password,
with the delivered columns and the masking rule of each (names, never values).
"""

from __future__ import annotations

import json
import logging
import socket
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from exchange.delivery_db import deliver_to_database
from exchange.delivery_masking import plan_rules
from pipelines import lineage, runner
from pipelines.cli import app as cli
from pipelines.masking import MASKING_KEY_ENV
from pipelines.spec import load_spec
from tests.dags.helpers import DEPT_USCC, spec_dict, write_spec
from tests.exchange.conftest_exchange import HRSS, Platform, build_platform, private_copy, publish
from tests.exchange.delivery.conftest import make_grant, second_version, version_schema
from tests.lineage.conftest import DATASET, DATE, events_of, read_events

pytestmark = pytest.mark.usefixtures("no_user_config")

Validate = Callable[[list[dict[str, Any]]], None]
URL_ENV = "SUBSCRIBER_DB_URL"
ROWS = 60
TABLE = "insured"


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Platform:
    platform = build_platform(tmp_path_factory.mktemp("lineage-delivery") / "home", rows=ROWS)
    platform.store.engine.dispose()  # checkpoint the WAL: the folder is copied per test
    return platform


@pytest.fixture
def platform(template: Platform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Platform:
    """A private copy of the platform, as $GOVDATA_HOME (where the default lineage files go)."""
    copy = private_copy(template, tmp_path / "home")
    for name in ("GOVDATA_USER", "GOVDATA_CATALOG_URL", "GOVDATA_DELIVERY_RETRIES", URL_ENV):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GOVDATA_HOME", str(copy.home))
    monkeypatch.setenv(MASKING_KEY_ENV, "lineage-delivery-masking-key")
    monkeypatch.setenv("GOVDATA_DELIVERY_BACKOFF", "0")
    return copy


@pytest.fixture
def sqlite_target(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[sa.Engine]:
    """The subscriber's SQLite database, its URL in $SUBSCRIBER_DB_URL."""
    url = f"sqlite:///{tmp_path / 'subscriber.db'}"
    monkeypatch.setenv(URL_ENV, url)
    engine = sa.create_engine(url)
    yield engine
    engine.dispose()


def database_grant(platform: Platform, entry: str = HRSS, **target: Any) -> int:
    grant, _ = make_grant(
        platform, entry=entry, method="database", target={"url_env": URL_ENV, "table": TABLE, **target}
    )
    return grant


def delivery_events(platform: Platform, receipt: dict[str, Any], entry: str = HRSS) -> list[dict[str, Any]]:
    path = lineage.delivery_event_file(platform.home, entry, receipt["id"])
    assert path.is_file(), f"no lineage file at {path}"
    assert path == platform.home / "lineage" / entry / "deliveries" / f"{receipt['id']}.jsonl"
    return read_events(path)


def names(datasets: list[dict[str, Any]] | None) -> list[tuple[str, str]]:
    return [(d["namespace"], d["name"]) for d in datasets or []]


def run_tags(event: dict[str, Any]) -> dict[str, str]:
    return {t["key"]: t["value"] for t in event["run"]["facets"]["tags"]["tags"]}


def text_of(path: Path) -> str:
    """The lineage file as written and with every JSON string decoded (escaped characters too)."""
    raw = path.read_text(encoding="utf-8")
    return raw + "\n" + json.dumps(read_events(path), ensure_ascii=False)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- a delivery that succeeds -------------------------------------------------------------------


def test_a_database_delivery_emits_start_and_complete_with_the_version_in_and_the_table_out(
    platform: Platform, sqlite_target: sa.Engine, assert_valid: Validate
) -> None:
    grant = database_grant(platform)
    receipt = deliver_to_database(platform.store, grant, actor="market_staff")
    assert receipt["outcome"] == "succeeded" and receipt["rows"] == ROWS

    events = delivery_events(platform, receipt)
    assert_valid(events)
    assert [(e["eventType"], e["job"]["namespace"], e["job"]["name"]) for e in events] == [
        ("START", "govdata", f"{HRSS}.deliver"),
        ("COMPLETE", "govdata", f"{HRSS}.deliver"),
    ]
    start, complete = events
    assert start["run"]["runId"] == complete["run"]["runId"]
    assert uuid.UUID(start["run"]["runId"]).version == 7
    assert "parent" not in complete["run"]["facets"]  # asked for by nobody's run: a root run
    assert "errorMessage" not in complete["run"]["facets"]
    assert complete["job"]["facets"]["jobType"]["jobType"] == "TASK"
    assert (
        run_tags(complete).items()
        >= {  # the client adds its own version as a tag
            "grant": str(grant),
            "receipt": str(receipt["id"]),
            "subscriber": platform.departments["market"],
            "mode": "database",
            "version": "1",
            "kind": "full",
            "already_present": "false",
        }.items()
    )

    # in: the exchange version, named and versioned as the publish step names its output
    version = platform.store.latest_version(HRSS)
    assert version is not None
    assert names(complete["inputs"]) == [(lineage.EXCHANGE_NAMESPACE, f"{HRSS}/1")]
    assert complete["inputs"][0]["facets"]["version"]["datasetVersion"] == "1"
    assert complete["inputs"][0]["facets"]["version"]["contentSha256"] == version.content_sha256
    assert complete["inputs"][0]["inputFacets"]["inputStatistics"]["rowCount"] == ROWS

    # out: the subscriber's table, named per the OpenLineage naming spec, with what was written
    database = str(sqlite_target.url.database)
    assert names(start["outputs"]) == names(complete["outputs"]) == [(f"sqlite://{Path(database).absolute()}", TABLE)]
    out = complete["outputs"][0]
    assert out["outputFacets"]["outputStatistics"]["rowCount"] == receipt["rows"] == ROWS
    assert out["facets"]["version"]["datasetVersion"] == "1"
    with sqlite_target.connect() as conn:
        written = [c["name"] for c in sa.inspect(conn).get_columns(TABLE)]
    assert [f["name"] for f in out["facets"]["schema"]["fields"]] == written

    # the masking: which column by which rule (names only); clear columns are identities
    schema = version_schema(platform, HRSS)
    _, plan, _ = plan_rules(schema, [c["name"] for c in schema], {})
    masked = {name: rule.value for name, rule in plan.items() if rule is not None}
    assert masked["resident_id"] == "hash" and {"name", "mobile", "address"} <= set(masked)
    tags = {(t["field"], t["value"]) for t in out["facets"]["tags"]["tags"] if t["key"] == "masked"}
    assert tags == set(masked.items())
    columns = out["facets"]["columnLineage"]["fields"]
    assert set(columns) == set(written)
    for name, column in columns.items():
        (source,) = column["inputFields"]
        assert (source["namespace"], source["name"], source["field"]) == (lineage.EXCHANGE_NAMESPACE, f"{HRSS}/1", name)
        assert source["transformations"][0]["masking"] is (name in masked), name
    types = {f["name"]: f["type"] for f in out["facets"]["schema"]["fields"]}
    assert types["resident_id"] == "VARCHAR" and types["contribution_base"] == "DECIMAL(18,2)"


def test_a_change_set_reads_both_versions_and_counts_the_changes_written(
    platform: Platform, sqlite_target: sa.Engine, assert_valid: Validate
) -> None:
    grant = database_grant(platform)
    assert deliver_to_database(platform.store, grant, actor="market_staff")["outcome"] == "succeeded"
    table, _ = second_version(platform.tables[HRSS])
    publish(platform, HRSS, table)
    receipt = deliver_to_database(platform.store, grant, actor="market_staff")
    assert receipt["outcome"] == "succeeded" and receipt["kind"] == "changes" and receipt["base_version"] == 1

    events = delivery_events(platform, receipt)
    assert_valid(events)
    complete = events[-1]
    assert complete["eventType"] == "COMPLETE"
    assert names(complete["inputs"]) == [
        (lineage.EXCHANGE_NAMESPACE, f"{HRSS}/2"),
        (lineage.EXCHANGE_NAMESPACE, f"{HRSS}/1"),
    ]
    assert complete["outputs"][0]["outputFacets"]["outputStatistics"]["rowCount"] == receipt["rows"] > 0
    assert complete["outputs"][0]["facets"]["version"]["datasetVersion"] == "2"
    assert run_tags(complete)["kind"] == "changes" and run_tags(complete)["base_version"] == "1"

    # the same version again: nothing written, and the events say so
    again = deliver_to_database(platform.store, grant, actor="market_staff")
    assert again["already_present"] is True
    complete = delivery_events(platform, again)[-1]
    assert complete["outputs"][0]["outputFacets"]["outputStatistics"]["rowCount"] == again["rows"] == 0
    assert run_tags(complete)["already_present"] == "true"
    assert "inputStatistics" not in complete["inputs"][0]["inputFacets"]


def test_the_delivery_reads_the_dataset_the_publish_step_wrote(
    platform: Platform, tmp_path: Path, sqlite_target: sa.Engine, assert_valid: Validate
) -> None:
    # The sample dataset, filed where the platform's catalog tree has room for it.
    catalog = {
        **spec_dict(DATASET)["catalog"],
        "classification": {"axis": "基础", "path": ["法人", "市场主体", "企业登记"]},
        "resource_code": "102010001/000099",
    }
    spec_path = write_spec(tmp_path / "datasets", DATASET, catalog=catalog)
    report = runner.run(spec_path, DATE)  # $GOVDATA_HOME is the platform: the version lands in its exchange
    assert report["status"] == "published"
    published = [e for e in events_of(platform.home) if e["job"]["name"] == f"{DATASET}.publish"][-1]
    assert published["eventType"] == "COMPLETE"

    platform.specs[DATASET] = load_spec(spec_path)
    platform.departments["sample"] = DEPT_USCC
    receipt = deliver_to_database(platform.store, database_grant(platform, entry=DATASET), actor="market_staff")
    assert receipt["outcome"] == "succeeded" and receipt["rows"] == 5

    events = delivery_events(platform, receipt, entry=DATASET)
    assert_valid(events)
    (read,) = events[-1]["inputs"]
    (wrote,) = published["outputs"]
    assert (read["namespace"], read["name"]) == (wrote["namespace"], wrote["name"])
    assert read["facets"]["version"]["datasetVersion"] == wrote["facets"]["version"]["datasetVersion"]
    assert read["facets"]["version"]["contentSha256"] == wrote["facets"]["version"]["contentSha256"]
    out = events[-1]["outputs"][0]
    assert "tags" not in out["facets"]  # nothing sensitive, nothing masked
    assert all(
        not c["inputFields"][0]["transformations"][0]["masking"]
        for c in out["facets"]["columnLineage"]["fields"].values()
    )


def test_no_value_of_the_data_appears_in_the_lineage_file(platform: Platform, sqlite_target: sa.Engine) -> None:
    receipt = deliver_to_database(platform.store, database_grant(platform), actor="market_staff")
    assert receipt["outcome"] == "succeeded"
    text = text_of(lineage.delivery_event_file(platform.home, HRSS, receipt["id"]))
    source = platform.tables[HRSS]
    with sqlite_target.connect() as conn:
        delivered = conn.execute(sa.text(f"SELECT resident_id, name, mobile, address FROM {TABLE}")).all()
    values = {
        *(str(v) for c in ("resident_id", "name", "mobile", "address") for v in source.column(c).to_pylist()[:20]),
        *(str(v) for row in delivered[:20] for v in row),  # the masked values too
    }
    assert len(values) > 100
    leaked = sorted(v for v in values if v in text)
    assert not leaked


# --- the parent, the CLI, off ---------------------------------------------------------------------


def test_the_airflow_glue_passes_the_dag_run_as_the_parent(
    platform: Platform, sqlite_target: sa.Engine, assert_valid: Validate
) -> None:
    parent = lineage.Parent.of(f"govdata_deliver_{HRSS}", "asset_triggered__2026-11-24T06:30:00+00:00")
    receipt = deliver_to_database(platform.store, database_grant(platform), actor="airflow", lineage_parent=parent)
    events = delivery_events(platform, receipt)
    assert_valid(events)
    for event in events:
        facet = event["run"]["facets"]["parent"]
        assert facet["job"]["name"] == f"govdata_deliver_{HRSS}" and facet["run"]["runId"] == parent.run_id
        assert facet["root"]["run"]["runId"] == parent.run_id


def test_govdata_exchange_deliver_emits_the_same_events(
    platform: Platform, sqlite_target: sa.Engine, assert_valid: Validate
) -> None:
    grant = database_grant(platform)
    result = CliRunner().invoke(
        cli, ["exchange", "deliver", str(grant), "--as", "market_staff", "--home", str(platform.home)]
    )
    assert result.exit_code == 0, result.output
    files = sorted((platform.home / "lineage" / HRSS / "deliveries").glob("*.jsonl"))
    assert len(files) == 1
    events = read_events(files[0])
    assert_valid(events)
    assert [e["eventType"] for e in events] == ["START", "COMPLETE"]
    assert events[-1]["outputs"][0]["outputFacets"]["outputStatistics"]["rowCount"] == ROWS


def test_lineage_off_writes_nothing_and_the_delivery_is_the_same(
    platform: Platform, sqlite_target: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(lineage.SWITCH_ENV, "off")
    receipt = deliver_to_database(platform.store, database_grant(platform), actor="market_staff")
    assert receipt["outcome"] == "succeeded" and receipt["rows"] == ROWS
    assert not (platform.home / "lineage").exists()


def test_an_unreachable_lineage_endpoint_does_not_fail_the_delivery(
    platform: Platform, sqlite_target: sa.Engine, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("OPENLINEAGE__TRANSPORT__TYPE", "http")
    monkeypatch.setenv("OPENLINEAGE__TRANSPORT__URL", f"http://127.0.0.1:{closed_port()}")
    monkeypatch.setenv("OPENLINEAGE__TRANSPORT__RETRY", '{"total": 0, "connect": 0, "read": 0}')
    caplog.set_level(logging.WARNING)
    receipt = deliver_to_database(platform.store, database_grant(platform), actor="market_staff")
    assert receipt["outcome"] == "succeeded" and receipt["rows"] == ROWS
    warnings = [r.getMessage() for r in caplog.records if r.name == lineage.__name__ and r.levelno >= logging.WARNING]
    assert len(warnings) == 1, warnings
    assert f"{HRSS} delivery {receipt['id']}" in warnings[0] and "the delivery goes on" in warnings[0]


# --- a delivery that fails for good -----------------------------------------------------------------


def test_a_delivery_that_fails_for_good_emits_fail_with_the_receipts_error(
    platform: Platform, assert_valid: Validate
) -> None:
    receipt = deliver_to_database(platform.store, database_grant(platform), actor="market_staff")  # $URL_ENV unset
    assert receipt["outcome"] == "failed" and URL_ENV in receipt["error"]

    events = delivery_events(platform, receipt)
    assert_valid(events)
    assert [e["eventType"] for e in events] == ["START", "FAIL"]
    assert events[0]["run"]["runId"] == events[1]["run"]["runId"]
    assert events[1]["run"]["facets"]["errorMessage"]["message"] == receipt["error"]
    assert events[1]["run"]["facets"]["errorMessage"]["programmingLanguage"] == "python"
    assert names(events[1]["inputs"]) == [(lineage.EXCHANGE_NAMESPACE, f"{HRSS}/1")]
    assert events[1]["outputs"] == []  # no URL: no table to name


def test_the_target_is_named_without_its_user_or_password(
    platform: Platform, monkeypatch: pytest.MonkeyPatch, assert_valid: Validate
) -> None:
    user, password, port = "lineage_subscriber_user", "Pw-Lineage-9f3k", closed_port()
    monkeypatch.setenv(URL_ENV, f"postgresql+psycopg://{user}:{password}@127.0.0.1:{port}/subscribers")
    monkeypatch.setenv("GOVDATA_DELIVERY_RETRIES", "0")
    receipt = deliver_to_database(platform.store, database_grant(platform, schema="exchange"), actor="market_staff")
    assert receipt["outcome"] == "failed" and receipt["attempts"] == 1  # nothing listens there

    path = lineage.delivery_event_file(platform.home, HRSS, receipt["id"])
    events = read_events(path)
    assert_valid(events)
    assert [e["eventType"] for e in events] == ["START", "FAIL"]
    for event in events:
        assert names(event["outputs"]) == [(f"postgres://127.0.0.1:{port}", f"subscribers.exchange.{TABLE}")]
    # a driver's message may quote a value: the event names its type, the receipt holds the message
    message = events[1]["run"]["facets"]["errorMessage"]["message"]
    assert message.startswith("OperationalError during the delivery") and f"receipt {receipt['id']}" in message
    text = text_of(path)
    assert user not in text and password not in text


@pytest.mark.integration
def test_a_delivery_into_postgresql_names_host_database_schema_and_table_only(
    platform: Platform, postgres_url: str, monkeypatch: pytest.MonkeyPatch, assert_valid: Validate
) -> None:
    suffix = uuid.uuid4().hex[:10]
    role, password, schema = f"gd_lineage_{suffix}", f"Pw-{suffix}-secret", f"gd_{suffix}"
    admin = sa.create_engine(postgres_url)
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
        conn.exec_driver_sql(f"CREATE SCHEMA {schema} AUTHORIZATION {role}")
    try:
        url = sa.make_url(postgres_url).set(username=role, password=password)
        monkeypatch.setenv(URL_ENV, url.render_as_string(hide_password=False))
        receipt = deliver_to_database(platform.store, database_grant(platform, schema=schema), actor="market_staff")
        assert receipt["outcome"] == "succeeded", receipt["error"]

        path = lineage.delivery_event_file(platform.home, HRSS, receipt["id"])
        events = read_events(path)
        assert_valid(events)
        assert [e["eventType"] for e in events] == ["START", "COMPLETE"]
        port = url.port or 5432
        assert names(events[-1]["outputs"]) == [(f"postgres://{url.host}:{port}", f"{url.database}.{schema}.{TABLE}")]
        assert events[-1]["outputs"][0]["outputFacets"]["outputStatistics"]["rowCount"] == receipt["rows"] == ROWS
        text = text_of(path)
        assert role not in text and password not in text
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            conn.exec_driver_sql(f"DROP ROLE IF EXISTS {role}")
        admin.dispose()
