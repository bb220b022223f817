"""Shared fixtures of the delivery tests (no tests here): a platform copied per test, grants, Python references.

Grants are made directly as rows (an approved application and its grant), so these tests do not
depend on how applications are reviewed. The references mask every value in Python with
:func:`pipelines.masking.mask` and compute change sets row by row: independent of the DuckDB SQL
under test.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from fastapi.testclient import TestClient

from exchange.delivery import subscriber_key
from exchange.delivery_masking import plan_rules
from exchange.identity import KEY_PREFIX, new_secret
from exchange.models import Application, Grant
from exchange.service import create_app
from pipelines.masking import MASKING_KEY_ENV, mask
from tests.exchange.conftest_exchange import HRSS, Platform, build_platform, private_copy

KEY = "delivery-tests-masking-key"
ROWS = 200
NOW = dt.datetime.now(dt.UTC)


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MASKING_KEY_ENV, KEY)
    for name in ("GOVDATA_USER", "GOVDATA_CATALOG_URL", "GOVDATA_HOME", "GOVDATA_DELIVERY_RETRIES"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GOVDATA_DELIVERY_BACKOFF", "0")


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Platform:
    platform = build_platform(tmp_path_factory.mktemp("delivery-template") / "home", rows=ROWS)
    platform.store.engine.dispose()  # checkpoint the WAL: the folder is copied per test
    return platform


@pytest.fixture
def platform(template: Platform, tmp_path: Path) -> Platform:
    """A private copy of the template platform (its version 1 files are shared, read-only)."""
    return private_copy(template, tmp_path / "home")


@pytest.fixture
def client(platform: Platform) -> Iterator[TestClient]:
    with TestClient(create_app(platform.home)) as c:
        yield c


def make_grant(
    platform: Platform,
    *,
    entry: str = HRSS,
    subscriber: str = "market",
    items: Sequence[str] | None = None,
    masking: dict[str, Any] | None = None,
    join_keys: Sequence[str] = (),
    method: str = "file",
    target: dict[str, Any] | None = None,
    expires_at: dt.datetime | None = None,
    max_uses: int | None = None,
    api_key: bool = False,
) -> tuple[int, str | None]:
    """An approved application of ``subscriber`` for ``entry`` and its grant; returns the grant id and its data key."""
    spec = platform.specs[entry]
    chosen = list(items) if items is not None else [c.name for c in spec.columns]
    uscc = platform.departments[subscriber]
    provider = next(short for short, u in platform.departments.items() if u == spec.department.uscc)
    key_id = key = digest = None
    if api_key:
        key_id, key, digest = new_secret(KEY_PREFIX)
    with platform.store.session() as s:
        application = Application(
            entry_id=entry,
            department_uscc=uscc,
            applicant=f"{subscriber}_staff",
            items=chosen,
            purpose="社会保障待遇资格核验",
            scenario="测试",
            delivery_method=method,
            end_date=(NOW + dt.timedelta(days=30)).date(),
            target=target,
            share_type="有条件共享",
            reviewer="provider",
            status="approved",
            decided_at=NOW,
            decided_by=f"{provider}_reviewer",
        )
        s.add(application)
        s.flush()
        grant = Grant(
            application_id=application.id,
            entry_id=entry,
            department_uscc=uscc,
            items=chosen,
            masking=masking or {},
            join_keys=list(join_keys),
            delivery_method=method,
            target=target,
            granted_by=f"{provider}_reviewer",
            expires_at=expires_at or NOW + dt.timedelta(days=30),
            max_uses=max_uses,
            api_key_id=key_id,
            api_key_sha256=digest,
        )
        s.add(grant)
        s.flush()
        return grant.id, key


def version_schema(platform: Platform, entry: str) -> list[dict[str, Any]]:
    version = platform.store.latest_version(entry)
    assert version is not None
    return list(version.schema)


def reference_rows(
    platform: Platform,
    table: pa.Table,
    *,
    entry: str = HRSS,
    subscriber: str = "market",
    items: Sequence[str] | None = None,
    masking: dict[str, Any] | None = None,
) -> dict[tuple[Any, ...], dict[str, Any]]:
    """``table`` as ``subscriber`` should receive it, masked value by value in Python, by delivered key."""
    schema = version_schema(platform, entry)
    chosen = list(items) if items is not None else [c["name"] for c in schema]
    delivered, plan, _ = plan_rules(schema, chosen, masking or {})
    key = subscriber_key(platform.departments[subscriber])
    pk = [c["name"] for c in schema if c.get("primary_key")]
    out: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in table.to_pylist():
        masked = {c: (row[c] if plan[c] is None else mask(row[c], plan[c], key=key)) for c in delivered}
        out[tuple(masked[k] for k in pk)] = masked
    return out


def reference_changes(
    old: dict[tuple[Any, ...], dict[str, Any]], new: dict[tuple[Any, ...], dict[str, Any]]
) -> dict[tuple[Any, ...], tuple[str, dict[str, Any] | None]]:
    """The change set between two masked references: key -> (op, row or None for a delete)."""
    changes: dict[tuple[Any, ...], tuple[str, dict[str, Any] | None]] = {}
    for k, row in new.items():
        if k not in old:
            changes[k] = ("insert", row)
        elif old[k] != row:
            changes[k] = ("update", row)
    for k in old:
        if k not in new:
            changes[k] = ("delete", None)
    return changes


def second_version(table: pa.Table) -> tuple[pa.Table, dict[str, list[str]]]:
    """Version 2 of the hrss table: inserts, deletes, visible updates, and changes the subscriber cannot see.

    Returns the table and the resident IDs by what happened to them.
    """
    rows = table.to_pylist()
    ids = [r["resident_id"] for r in rows]
    deleted = set(ids[:7])
    visible = ids[10:22]  # a new status or contribution: an update in every delivery
    mobile_same_mask = ids[30:34]  # new middle digits: masks to the same 138****1234
    name_same_mask = ids[40:43]  # another given name with the same surname: 张** again
    out = []
    for r in rows:
        rid = r["resident_id"]
        if rid in deleted:
            continue
        r = dict(r)
        if rid in visible:
            r["insured_status"] = "3"
            r["contribution_base"] = round(r["contribution_base"] + 100.5, 2)
        if rid in mobile_same_mask:
            r["mobile"] = r["mobile"][:3] + "0000" + r["mobile"][7:]
        if rid in name_same_mask:
            r["name"] = r["name"][0] + "某某"
        out.append(r)
    inserted = [f"3101{900_000 + i:014d}" for i in range(9)]
    template = rows[0]
    for i, rid in enumerate(inserted):
        out.append(
            {
                **template,
                "resident_id": rid,
                "name": "欧阳" + "娜" * (i % 3 + 1),
                "mobile": f"1390000{i:04d}",
                "address": f"上海市徐汇区漕溪北路{i + 1}号",
            }
        )
    return pa.Table.from_pylist(out, schema=table.schema), {
        "deleted": sorted(deleted),
        "visible": visible,
        "mobile_same_mask": mobile_same_mask,
        "name_same_mask": name_same_mask,
        "inserted": inserted,
    }
