"""schemathesis against the service's OpenAPI description, on a throwaway instance over real HTTP.

Every operation is fuzzed with a department user's token and with the city admin's: no answer may
be a 5xx, and every answer must match what the description declares (status code, content type,
body schema, headers); requests that break the schema must be refused, and endpoints must refuse
callers without a token. Revoking a token is left out of the fuzzing (it would revoke the very
token the run uses); ``test_identity`` covers it.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.catalog.conftest_search import Server, start_server, venv_env
from tests.exchange.conftest_exchange import Platform, build_platform

ST = str(Path(sys.executable).parent / "st")
CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
        "response_headers_conformance",
        "negative_data_rejection",
        "ignored_auth",
        "unsupported_method",
    ]
)


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Platform:
    return build_platform(tmp_path_factory.mktemp("schemathesis") / "home", rows=50)


@pytest.fixture(scope="module")
def server(platform: Platform) -> Iterator[Server]:
    running = start_server(platform.home)
    yield running
    code, _, err = running.stop()
    assert code == 0, err


@pytest.mark.parametrize("user", ["hrss_staff", "market_reviewer", "city_admin"])
def test_no_server_errors_and_answers_match_the_description(
    server: Server, platform: Platform, user: str, tmp_path: Path
) -> None:
    result = subprocess.run(
        [
            ST,
            "run",
            f"{server.base}/openapi.json",
            "--header",
            f"Authorization: Bearer {platform.tokens[user]}",
            "--checks",
            CHECKS,
            "--max-examples",
            "25",
            "--seed",
            "20261124",
            "--exclude-path-regex",
            r"^/exchange/v1/tokens/\{token_id\}$",
            "--request-timeout",
            "30",
            "--report",
            "junit",
            "--report-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        env=venv_env(),
        cwd=tmp_path,  # schemathesis keeps a cache folder in the working directory
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-20000:] + result.stderr[-5000:]
    assert "Tested:" in result.stdout, result.stdout[-5000:]
