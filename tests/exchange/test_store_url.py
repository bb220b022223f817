"""``GOVDATA_STORE_URL``: what an object-store URL may say, and the errors for what it may not."""

from __future__ import annotations

from pathlib import Path

import pytest

from exchange.objectstore import STORE_URL_ENV, StoreURL, parse_store_url
from exchange.store import LocalExchangeStore, open_store, version_folder
from pipelines.errors import SpecError, TerminalError
from pipelines.workspace import Workspace


def test_a_full_url_is_read_into_its_parts() -> None:
    url = parse_store_url(
        " s3://govdata-exchange/city/versions?endpoint=https://oss.intranet:9443&region=cn-sh-1&addressing=virtual"
        "&timeout=120 "
    )
    assert url == StoreURL(
        bucket="govdata-exchange",
        prefix="city/versions",
        endpoint="https://oss.intranet:9443",
        region="cn-sh-1",
        virtual=True,
        timeout=120.0,
    )
    assert url.canonical == "s3://govdata-exchange/city/versions"
    assert url.key("hrss", "v000001", "data.parquet") == "govdata-exchange/city/versions/hrss/v000001/data.parquet"


def test_the_defaults_are_path_addressing_us_east_1_and_no_prefix() -> None:
    url = parse_store_url("s3://govdata/")
    assert (url.prefix, url.endpoint, url.region, url.virtual, url.timeout) == ("", None, "us-east-1", False, 60.0)
    assert url.canonical == "s3://govdata"
    assert url.key("x") == "govdata/x"


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("/var/exchange", "the scheme must be s3://"),
        ("https://oss.intranet/govdata", "the scheme must be s3://"),
        ("s3://AKIAXXXX:secret@govdata/exchange", "credentials do not belong in the URL"),
        ("s3://govdata/exchange?secret_key=abc", "would put a secret in the URL"),
        ("s3://govdata/exchange?access_key=abc", "would put a secret in the URL"),
        ("s3://Gov_Data/exchange", "is not a valid bucket name"),
        ("s3://ab/exchange", "is not a valid bucket name"),
        ("s3://-govdata/exchange", "is not a valid bucket name"),
        ("s3:///exchange", "is not a valid bucket name"),
        ("s3://govdata/a//b", "empty, '.' or '..' segments"),
        ("s3://govdata/a/../b", "empty, '.' or '..' segments"),
        ("s3://govdata/a\x00b", "control characters"),
        ("s3://govdata/exchange#frag", "#fragment"),
        ("s3://govdata/exchange?endpont=http://x:9000", "unknown option 'endpont'"),
        ("s3://govdata/exchange?region=a&region=b", "given twice"),
        ("s3://govdata/exchange?endpoint=oss.intranet:9000", "is not http(s)://host[:port]"),
        ("s3://govdata/exchange?endpoint=http://oss/bucket", "is not http(s)://host[:port]"),
        ("s3://govdata/exchange?endpoint=http://oss:99999", "has an invalid port"),
        ("s3://govdata/exchange?addressing=dns", "is not path or virtual"),
        ("s3://govdata/exchange?region=us east", "is not a region name"),
        ("s3://govdata/exchange?timeout=soon", "is not a number of seconds"),
        ("s3://govdata/exchange?timeout=0", "is not a number of seconds"),
        ("s3://govdata/exchange?timeout=nan", "is not a number of seconds"),
    ],
)
def test_a_bad_url_is_refused_with_the_variable_the_problem_and_the_fix(url: str, problem: str) -> None:
    with pytest.raises(SpecError) as err:
        parse_store_url(url)
    assert str(err.value).startswith(f"{STORE_URL_ENV}="), err.value
    assert problem in err.value.message, err.value.message
    assert err.value.hint


def test_the_error_never_echoes_what_follows_the_question_mark() -> None:
    with pytest.raises(SpecError) as err:
        parse_store_url("s3://govdata/exchange?secret_key=wJalrXUtnFEMI")
    assert "wJalrXUtnFEMI" not in str(err.value)


def test_without_the_variable_the_workspace_keeps_its_local_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(STORE_URL_ENV, raising=False)
    store = open_store(Workspace.from_env(tmp_path))
    assert isinstance(store, LocalExchangeStore)


def test_a_bad_variable_stops_the_workspace_from_opening_its_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(STORE_URL_ENV, "s3://govdata/exchange?endpoint=ftp://oss:21")
    with pytest.raises(SpecError, match="is not http"):
        open_store(Workspace.from_env(tmp_path))


def test_a_version_in_an_object_store_this_process_was_not_given_is_an_error_naming_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(STORE_URL_ENV, raising=False)
    monkeypatch.setenv("GOVDATA_HOME", str(tmp_path))
    with pytest.raises(TerminalError) as err:
        version_folder("s3://elsewhere-never-opened/exchange/hrss/v000001", "hrss", 1)
    assert "s3://elsewhere-never-opened/exchange/hrss/v000001" in err.value.message
    assert STORE_URL_ENV in (err.value.hint or "")


def test_a_folder_location_is_the_folder(tmp_path: Path) -> None:
    assert version_folder(str(tmp_path / "hrss" / "v000001"), "hrss", 1) == tmp_path / "hrss" / "v000001"
