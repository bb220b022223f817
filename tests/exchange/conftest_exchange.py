"""A platform to test the exchange on: three departments with published data, users with tokens.

``build_platform(home)`` registers the bundled departments' specs (人社 insured persons with
sensitive items, 市场监管 enterprise registry, 交通 bus stops), publishes version 1 of each from
generated rows (no quality gate: the exchange only needs published versions), and creates, per
department, a staff user and a reviewer (``dept_admin``), plus the city admin and an auditor, each
with an API token holding every scope its role allows.

``publish(platform, dataset, table)`` publishes a further version of any table (a pyarrow table
with the spec's columns), the way the pipeline's publish step commits one: data and manifest into
the exchange store, then the catalog row.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from catalog import lifecycle
from catalog.store import CatalogStore
from exchange.identity import create_token
from exchange.objectstore import ObjectExchangeStore
from exchange.store import LocalExchangeStore, open_store
from pipelines.files import sha256_file
from pipelines.spec import DUCKDB_TYPES, DatasetSpec, load_spec
from pipelines.workspace import Workspace

REPO = Path(__file__).resolve().parents[2]
SPECS = {
    "hrss": REPO / "datasets/hrss/insured_persons.yaml",
    "market": REPO / "datasets/market_regulation/enterprise_registry.yaml",
    "transport": REPO / "datasets/transport/bus_stops.yaml",
}
HRSS, MARKET, TRANSPORT = "hrss_insured_persons", "market_enterprise_registry", "transport_bus_stops"


@dataclass
class Platform:
    """A workspace with three departments' published data, users and their API tokens."""

    home: Path
    workspace: Workspace
    store: CatalogStore
    exchange: LocalExchangeStore | ObjectExchangeStore
    specs: dict[str, DatasetSpec]  # by dataset id
    departments: dict[str, str]  # short name (hrss, market, transport) -> USCC
    tokens: dict[str, str] = field(default_factory=dict)  # user id -> API token
    tables: dict[str, pa.Table] = field(default_factory=dict)  # dataset id -> the latest published rows

    def auth(self, user: str) -> dict[str, str]:
        """The HTTP header that authenticates as ``user``."""
        return {"Authorization": f"Bearer {self.tokens[user]}"}


# Users: <short>_staff, <short>_reviewer per department; city_admin; auditor.
def _users(departments: dict[str, str]) -> list[tuple[str, str, str, str | None]]:
    users: list[tuple[str, str, str, str | None]] = []
    for short, uscc in departments.items():
        users.append((f"{short}_staff", f"{short} 工作人员", "staff", uscc))
        users.append((f"{short}_reviewer", f"{short} 审核人", "dept_admin", uscc))
    users.append(("city_admin", "市大数据中心管理员", "city_admin", None))
    users.append(("auditor", "审计员", "auditor", None))
    return users


def generated_rows(spec: DatasetSpec, n: int, seed: int = 7) -> pa.Table:
    """``n`` deterministic rows with the spec's columns (plausible values, unique primary keys)."""
    rng = random.Random(seed)
    columns: dict[str, list[Any]] = {}
    for c in spec.columns:
        values: list[Any] = []
        for i in range(n):
            if c.type == "date":
                values.append(dt.date(1960, 1, 1) + dt.timedelta(days=rng.randrange(20000)))
            elif c.type in ("integer",):
                values.append(rng.randrange(1, 10_000))
            elif c.type in ("money", "decimal", "float"):
                values.append(round(rng.uniform(1000, 40000), 2))
            elif c.type == "boolean":
                values.append(rng.random() < 0.5)
            elif c.type == "timestamp":
                values.append(dt.datetime(2026, 1, 1, tzinfo=dt.UTC) + dt.timedelta(minutes=rng.randrange(500000)))
            elif c.name == "resident_id":
                values.append(f"3101{i:014d}")
            elif c.name == "name":
                values.append(rng.choice("张王李赵刘陈杨黄") + rng.choice(["伟", "芳", "娜", "敏静", "秀英"]))
            elif c.name == "mobile":
                values.append(f"13{rng.randrange(10**9):09d}")
            elif c.name == "address":
                values.append(f"上海市浦东新区世纪大道{rng.randrange(1, 2000)}号")
            elif c.primary_key:
                values.append(f"{c.name[:4].upper()}{i:08d}")
            else:
                values.append(f"{c.title}{rng.randrange(1000)}")
        columns[c.name] = values
    return pa.table(columns)


def publish(platform: Platform, dataset: str, table: pa.Table, *, run_id: str | None = None) -> int:
    """Publish ``table`` as the next version of ``dataset``; returns its number."""
    spec = platform.specs[dataset]
    number = platform.store.next_version_number(dataset)
    run_id = run_id or f"test-{number}"
    staged = platform.home / "staging" / f"{dataset}-{number}.parquet"
    staged.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table.select([c.name for c in spec.columns]), staged)
    digest = sha256_file(staged)
    schema = [
        {
            "name": c.name,
            "title": c.title,
            "type": c.type,
            "primary_key": c.name in spec.primary_key,
            "nullable": c.nullable,
            "sensitive": c.sensitive,
            "length": c.length,
        }
        for c in spec.columns
    ]
    manifest = {
        "resource": dataset,
        "resource_code": spec.catalog.resource_code,
        "version": number,
        "run_id": run_id,
        "rows": table.num_rows,
        "schema": schema,
        "primary_key": list(spec.primary_key),
        "content_sha256": digest,
        "fingerprint": digest,
        "files": [{"path": "data.parquet", "rows": table.num_rows, "sha256": digest}],
    }
    stored = platform.exchange.write(dataset, number, staged, manifest)
    platform.store.add_version(
        dataset,
        number=number,
        run_id=run_id,
        row_count=table.num_rows,
        content_sha256=digest,
        fingerprint=hashlib.sha256(f"{dataset}:{digest}".encode()).hexdigest(),
        schema=schema,
        quality={"success": True, "score": 1.0},
        lineage={"source": "test", "run_id": run_id},
        location=stored.where,
        watermark=None,
        source_system="test",
    )
    platform.tables[dataset] = table
    return number


def use_object_store(s3_server: Any, monkeypatch: Any, prefix: str = "city/exchange") -> str:
    """Point ``GOVDATA_STORE_URL`` at a new bucket of the test S3 server (credentials in the AWS variables); its name."""
    import uuid

    name = f"govdata-{uuid.uuid4().hex[:12]}"
    s3_server.pyarrow_filesystem(allow_bucket_creation=True).create_dir(name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.secret_key)
    query = f"endpoint={s3_server.endpoint}&region={s3_server.region}"
    monkeypatch.setenv("GOVDATA_STORE_URL", f"s3://{name}/{prefix}?{query}")
    return name


def build_platform(home: Path, *, rows: int = 200) -> Platform:
    """Three departments with version 1 of their data published, users and tokens (see the module doc)."""
    workspace = Workspace.from_env(home)
    store = CatalogStore(workspace.catalog_url)
    exchange = open_store(workspace)  # GOVDATA_STORE_URL: an object store, else the local folder
    specs = {}
    departments = {}
    for short, path in SPECS.items():
        spec = load_spec(path)
        store.register(spec, source=f"{short} test source")
        specs[spec.id] = spec
        departments[short] = spec.department.uscc
    platform = Platform(home, workspace, store, exchange, specs, departments)
    with store.session() as s:
        for user_id, name, role, uscc in _users(departments):
            lifecycle.add_user(s, user_id, name=name, role=role, department=uscc)
    with store.session() as s:
        for user_id, *_ in _users(departments):
            _, token = create_token(s, user_id, name="tests")
            platform.tokens[user_id] = token
    for i, (dataset, spec) in enumerate(specs.items()):
        publish(platform, dataset, generated_rows(spec, rows, seed=i), run_id="test-1")
    return platform


def private_copy(template: Platform, home: Path) -> Platform:
    """A copy of ``template`` at ``home`` (its database and files; the same users and tokens), for one test."""
    shutil.copytree(template.home, home)
    workspace = Workspace.from_env(home)
    return Platform(
        home=home,
        workspace=workspace,
        store=CatalogStore(workspace.catalog_url),
        exchange=open_store(workspace),
        specs=template.specs,
        departments=template.departments,
        tokens=dict(template.tokens),
        tables=dict(template.tables),
    )


def manifest_for(
    spec: DatasetSpec, data: bytes, *, rows: int, run_id: str, source: str = "tests", score: float = 1.0
) -> dict[str, Any]:
    """The manifest the catalog step would prepare for ``data``, a Parquet file of ``spec`` (exchange.publishing)."""
    digest = hashlib.sha256(data).hexdigest()
    return {
        "resource": spec.id,
        "resource_code": spec.catalog.resource_code,
        "run_id": run_id,
        "rows": rows,
        "bytes": len(data),
        "schema": [
            {
                "name": c.name,
                "title": c.title,
                "type": c.type,
                "type_code": c.type_code,
                "duckdb_type": DUCKDB_TYPES[c.type],
                "primary_key": c.primary_key,
                "nullable": c.nullable,
                "sensitive": c.sensitive,
                "length": c.length,
            }
            for c in spec.columns
        ],
        "primary_key": list(spec.primary_key),
        "content_sha256": digest,
        "fingerprint": hashlib.sha256(f"{spec.id}:{digest}".encode()).hexdigest(),
        "quality": {"success": True, "score": score},
        "lineage": {"source": source, "run_id": run_id},
        "source_system": source,
    }
