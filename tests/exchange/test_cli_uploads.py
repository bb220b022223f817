"""``govdata exchange uploads``: the exchange host's view of uploads, and ``--clean`` of stale ones.

Uploads are made over HTTP (:mod:`tests.exchange.test_uploads` helpers), then listed and
cleaned through the CLI on the same workspace.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update
from typer.testing import CliRunner

from catalog.models import utcnow
from exchange import audit, uploads
from exchange.models import Upload
from exchange.service import create_app
from pipelines.cli import app
from tests.exchange.conftest_exchange import TRANSPORT, Platform, build_platform
from tests.exchange.test_uploads import (
    CHUNK,
    candidate,
    clean_env,
    private_copy,
    put,
    started,
    uploaded,
)

cli = CliRunner()


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch) -> None:
    clean_env(monkeypatch)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Platform:
    platform = build_platform(tmp_path_factory.mktemp("cli-uploads-template") / "home", rows=20)
    platform.store.engine.dispose()  # checkpoint the WAL: the folder is copied per test
    return platform


@pytest.fixture
def platform(template: Platform, tmp_path: Path) -> Platform:
    return private_copy(template, tmp_path / "home")


@pytest.fixture
def client(platform: Platform) -> Iterator[TestClient]:
    with TestClient(create_app(platform.home)) as c:
        yield c


def invoke(platform: Platform, *args: str) -> tuple[int, str]:
    result = cli.invoke(
        app, ["exchange", "uploads", "--home", str(platform.home), *args], env={"COLUMNS": "250", "GOVDATA_USER": None}
    )
    assert "Traceback" not in result.output, result.output
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def listed(platform: Platform, *args: str) -> dict[str, Any]:
    code, text = invoke(platform, "--json", *args)
    assert code == 0, text
    doc: dict[str, Any] = json.loads(text)
    return doc


def ids(doc: dict[str, Any]) -> list[str]:
    return [u["id"] for u in doc["uploads"]]


@pytest.fixture
def three(client: TestClient, platform: Platform) -> dict[str, str]:
    """An open upload of market (one chunk in), an open one of transport, a committed one of market."""
    market = started(client, platform, candidate(platform, seed=1))
    assert put(client, platform, market["id"], 0, candidate(platform, seed=1).data[:CHUNK]).status_code == 200
    transport = started(client, platform, candidate(platform, TRANSPORT, seed=2), "transport_staff")
    done, _ = uploaded(client, platform, candidate(platform, seed=3))
    return {"market": market["id"], "transport": transport["id"], "committed": done}


def test_lists_open_uploads_of_every_department(platform: Platform, three: dict[str, str]) -> None:
    doc = listed(platform)
    assert sorted(ids(doc)) == sorted([three["market"], three["transport"]])
    market = next(u for u in doc["uploads"] if u["id"] == three["market"])
    assert (market["status"], market["received"], market["user"]) == ("open", CHUNK, "market_staff")
    assert "cleaned" not in doc
    every = listed(platform, "--all")
    assert sorted(ids(every)) == sorted(three.values())
    assert {u["id"]: u["status"] for u in every["uploads"]}[three["committed"]] == "committed"


def test_the_table_shows_progress_and_says_when_there_is_nothing(platform: Platform, three: dict[str, str]) -> None:
    code, text = invoke(platform)
    assert code == 0
    assert three["market"] in text and three["transport"] in text and three["committed"] not in text
    assert "1.0 KiB / " in text and "open uploads" in text
    code, text = invoke(platform, "--as", "hrss_staff")
    assert code == 0 and "no open uploads" in text


def test_as_a_user_lists_what_that_user_may_see(platform: Platform, three: dict[str, str]) -> None:
    assert ids(listed(platform, "--as", "market_staff")) == [three["market"]]
    assert ids(listed(platform, "--as", "transport_reviewer")) == [three["transport"]]
    assert sorted(ids(listed(platform, "--as", "city_admin"))) == sorted([three["market"], three["transport"]])
    code, text = invoke(platform, "--as", "auditor")
    assert code == 1 and "exchange:publish" in text
    code, text = invoke(platform, "--as", "nobody_at_all")
    assert code == 1 and "nobody_at_all" in text
    code, text = invoke(platform, "--as", "x" * 500)
    assert code == 1 and "error:" in text


def test_clean_expires_idle_uploads_and_deletes_old_orphaned_parts(
    platform: Platform, three: dict[str, str], client: TestClient
) -> None:
    with platform.store.session() as s:  # the market upload idle for a day and a bit (the clock, moved)
        s.execute(
            update(Upload).where(Upload.id == three["market"]).values(updated_at=utcnow() - dt.timedelta(hours=25))
        )
    folder = uploads.uploads_dir(platform.workspace)
    old_orphan, new_orphan = folder / ("a" * 32 + ".part"), folder / ("b" * 32 + ".part")
    for orphan in (old_orphan, new_orphan):
        orphan.write_bytes(b"left behind")
    stamp = (utcnow() - dt.timedelta(hours=30)).timestamp()
    os.utime(old_orphan, (stamp, stamp))
    unrelated = folder / "notes.txt"
    unrelated.write_text("not a part file", encoding="utf-8")

    doc = listed(platform, "--clean", "--as", "city_admin")
    assert doc["cleaned"] == {"expired": [three["market"]], "orphans": [old_orphan.name]}
    assert ids(doc) == [three["transport"]]
    assert not uploads.part_path(platform.workspace, three["market"]).exists()
    assert not old_orphan.exists() and new_orphan.exists() and unrelated.exists()
    assert uploads.part_path(platform.workspace, three["transport"]).exists()
    with platform.store.session() as s:
        events = [(e.action, e.actor) for e in audit.events(s, subject=f"upload:{three['market']}")]
    assert events[-1] == ("upload.expire", "city_admin")
    # The expired upload answers so over the API, and a second clean finds nothing.
    shown = client.get(f"/exchange/v1/uploads/{three['market']}", headers=platform.auth("market_staff")).json()
    assert shown["status"] == "expired"
    code, text = invoke(platform, "--clean")
    assert code == 0 and "expired 0 idle upload(s), deleted 0 orphaned part file(s)" in text


def test_clean_without_a_user_is_audited_as_govdata(platform: Platform, three: dict[str, str]) -> None:
    with platform.store.session() as s:
        s.execute(
            update(Upload).where(Upload.id == three["transport"]).values(updated_at=utcnow() - dt.timedelta(hours=25))
        )
    code, text = invoke(platform, "--clean")
    assert code == 0 and "expired 1 idle upload(s)" in text
    with platform.store.session() as s:
        events = [(e.action, e.actor) for e in audit.events(s, subject=f"upload:{three['transport']}")]
    assert events[-1] == ("upload.expire", "govdata")


def test_a_shorter_ttl_from_the_environment_applies(
    platform: Platform, three: dict[str, str], monkeypatch: pytest.MonkeyPatch, client: TestClient
) -> None:
    with platform.store.session() as s:
        s.execute(update(Upload).values(updated_at=utcnow() - dt.timedelta(hours=2)))
    assert listed(platform, "--clean")["cleaned"]["expired"] == []  # 2 h idle, 24 h allowed
    monkeypatch.setenv("GOVDATA_UPLOAD_TTL_HOURS", "1")
    assert sorted(listed(platform, "--clean")["cleaned"]["expired"]) == sorted([three["market"], three["transport"]])
    # The committed upload is history, untouched.
    assert {u["id"]: u["status"] for u in listed(platform, "--all")["uploads"]}[three["committed"]] == "committed"


@pytest.mark.parametrize("value", ["abc", "0", "-1", "inf", "nan"])
def test_a_bad_limit_in_the_environment_is_named(
    platform: Platform, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("GOVDATA_UPLOAD_TTL_HOURS", value)
    code, text = invoke(platform, "--clean")
    assert code == 1 and f"GOVDATA_UPLOAD_TTL_HOURS={value!r}" in text


def test_an_empty_workspace_has_no_uploads(platform: Platform, client: TestClient) -> None:
    assert listed(platform) == {"uploads": []}
    code, text = invoke(platform, "--all")
    assert code == 0 and "no uploads" in text
