"""The CKAN-compatible API end to end: the real ``ckanapi`` client and plain HTTP against ``govdata serve``.

One server on loopback over a catalog of 28 entries (21 published, 7 not): more than one page
of results, and unpublished entries that an anonymous caller must never see.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from catalog.ckan import CKAN_VERSION, organization_name
from tests.catalog.conftest_search import (
    ENTRIES,
    MARKET,
    POPULATION,
    PUBLISHED,
    TRANSPORT,
    UNPUBLISHED,
    Server,
    build_catalog,
    start_server,
    venv_env,
)

BY_ID = {e["id"]: e for e in ENTRIES}
CKANAPI = str(Path(sys.executable).parent / "ckanapi")
PREFIXES = ("/api/3/action", "/api/action")
BUS_LINES = sorted(i for i in PUBLISHED if i.startswith("bus_line_"))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("ckan") / "home"
    build_catalog(f"sqlite:///{home.resolve() / 'catalog.db'}")
    running = start_server(home)
    yield running
    code, _, err = running.stop()
    assert code == 0, err


@pytest.fixture(scope="module")
def http(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base, timeout=30) as client:
        yield client


def ckanapi(server: Server, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CKANAPI, *args, "-r", server.base], capture_output=True, text=True, env=venv_env(), timeout=300
    )


def action(
    http: httpx.Client, name: str, method: str = "GET", prefix: str = "/api/3/action", /, **params: Any
) -> httpx.Response:
    if method == "GET":
        return http.get(f"{prefix}/{name}", params=params)
    return http.post(f"{prefix}/{name}", json=params)


def ok(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["success"] is True
    assert body["help"].endswith(f"/api/3/action/help_show?name={response.url.path.rsplit('/', 1)[-1]}")
    return body["result"]


def failed(response: httpx.Response, status: int, kind: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is False and body["error"]["__type"] == kind, body
    assert "help" in body
    return dict(body["error"])


# --- the real client -------------------------------------------------------------------------------


def test_ckanapi_action_package_search(server: Server) -> None:
    done = ckanapi(server, "action", "package_search", "q=人口")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["count"] == 4
    # CKAN's default order: score (a name match first), then the latest change first
    assert [r["name"] for r in result["results"]] == [
        "population_yearbook",
        "population_register",
        "housing_subsidy",
        "school_enrolment",
    ]
    paged = json.loads(ckanapi(server, "action", "package_search", "q=人口", "rows:2", "start:2").stdout)
    assert (paged["count"], [r["name"] for r in paged["results"]]) == (4, ["housing_subsidy", "school_enrolment"])


def test_ckanapi_action_with_get_requests_and_filters(server: Server) -> None:
    done = ckanapi(server, "action", "package_search", "fq=groups:theme res_format:csv", "rows:100", "-g")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert sorted(r["name"] for r in result["results"]) == BUS_LINES
    assert result["count"] == len(BUS_LINES)


def test_ckanapi_search_datasets_pages_until_an_empty_page(server: Server) -> None:
    done = ckanapi(server, "search", "datasets", "q=公交")
    assert done.returncode == 0, done.stderr
    names = [json.loads(line)["name"] for line in done.stdout.splitlines()]
    assert sorted(names) == BUS_LINES and len(names) == len(set(names))
    everything = ckanapi(server, "search", "datasets", "q=*:*")
    names = [json.loads(line)["name"] for line in everything.stdout.splitlines()]
    assert sorted(names) == PUBLISHED


def test_ckanapi_search_datasets_honours_rows(server: Server) -> None:
    done = ckanapi(server, "search", "datasets", "q=公交", "rows:3", "start:1")
    assert done.returncode == 0, done.stderr
    names = [json.loads(line)["name"] for line in done.stdout.splitlines()]
    assert names == sorted(BUS_LINES, reverse=True)[1:4]  # same score: the latest change (registration) first


def test_ckanapi_dump_datasets_all_holds_every_published_entry_once(server: Server, tmp_path: Path) -> None:
    output = tmp_path / "datasets.jsonl"
    done = ckanapi(server, "dump", "datasets", "--all", "-q", "-O", str(output))
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]
    names = [r["name"] for r in records]
    assert sorted(names) == PUBLISHED and len(names) == len(set(names))
    assert not set(names) & set(UNPUBLISHED)
    assert all(r["state"] == "active" and r["organization"]["name"] for r in records)


def test_ckanapi_dump_organizations(server: Server, tmp_path: Path) -> None:
    output = tmp_path / "orgs.jsonl"
    done = ckanapi(server, "dump", "organizations", "--all", "-q", "-O", str(output))
    assert done.returncode == 0, done.stderr
    orgs = {o["name"]: o for o in map(json.loads, output.read_text(encoding="utf-8").splitlines())}
    assert orgs[organization_name(TRANSPORT["uscc"])]["package_count"] == len(BUS_LINES) + 1
    assert orgs[organization_name(MARKET["uscc"])]["title"] == MARKET["name"]


def test_ckanapi_reports_not_found_for_an_unpublished_entry(server: Server) -> None:
    done = ckanapi(server, "action", "package_show", "id=population_census_draft")
    assert done.returncode != 0
    assert "NotFound" in done.stderr


# --- every action over HTTP ------------------------------------------------------------------------


@pytest.mark.parametrize("prefix", PREFIXES)
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_package_list(http: httpx.Client, prefix: str, method: str) -> None:
    assert ok(action(http, "package_list", method, prefix)) == PUBLISHED
    assert ok(action(http, "package_list", method, prefix, limit=3, offset=2)) == PUBLISHED[2:5]


@pytest.mark.parametrize("prefix", PREFIXES)
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_package_show(http: httpx.Client, prefix: str, method: str) -> None:
    pkg = ok(action(http, "package_show", method, prefix, id="enterprise_registry"))
    assert (pkg["id"], pkg["name"], pkg["title"]) == ("enterprise_registry", "enterprise_registry", "企业登记信息")
    assert pkg["notes"] == BY_ID["enterprise_registry"]["abstract"]
    assert pkg["state"] == "active" and pkg["private"] is False and pkg["type"] == "dataset"
    assert pkg["organization"]["name"] == organization_name(MARKET["uscc"])
    assert pkg["organization"]["title"] == MARKET["name"] and pkg["owner_org"] == MARKET["uscc"]
    assert [g["name"] for g in pkg["groups"]] == ["base"]
    assert [t["name"] for t in pkg["tags"]] == ["法人", "企业"]
    resources = pkg["resources"]
    assert [(r["id"], r["version"], r["format"], r["row_count"]) for r in resources] == [
        ("enterprise_registry.v1", 1, "MySQL", 100),
        ("enterprise_registry.v2", 2, "MySQL", 200),
    ]
    assert all(r["share_method"] == "数据库" and r["url"].startswith(http.base_url.scheme) for r in resources)
    extras = {x["key"]: x["value"] for x in pkg["extras"]}
    assert extras["resource_code"] == "102010/000007"
    assert extras["classification"] == "基础/法人/企业"
    assert extras["provider_code"] == MARKET["uscc"]
    assert (extras["share_type"], extras["update_cycle"], extras["open_to_public"]) == ("无条件共享", "每日", "true")
    assert [i["name"] for i in json.loads(extras["data_items"])] == ["uscc", "legal_person", "capital"]
    assert pkg["metadata_created"] <= pkg["metadata_modified"]
    assert "+" not in pkg["metadata_modified"]  # CKAN's UTC without an offset
    assert ok(action(http, "package_show", method, prefix, id="102010/000007"))["name"] == "enterprise_registry"


def test_resources_follow_the_delivery_method_and_share_type(http: httpx.Client) -> None:
    api = ok(action(http, "package_show", id="housing_subsidy"))
    assert [(r["id"], r["share_method"], r["format"]) for r in api["resources"]] == [
        ("housing_subsidy.v1", "接口", "RESTful")
    ]


@pytest.mark.parametrize("entry_id", UNPUBLISHED)
def test_an_unpublished_entry_is_not_found(http: httpx.Client, entry_id: str) -> None:
    error = failed(action(http, "package_show", id=entry_id), 404, "Not Found Error")
    assert entry_id in error["message"]
    failed(action(http, "resource_show", id=f"{entry_id}.v1"), 404, "Not Found Error")
    assert entry_id not in json.dumps(ok(action(http, "package_search", q="", rows=1000)))


def test_package_show_needs_an_id(http: httpx.Client) -> None:
    error = failed(action(http, "package_show", "POST"), 409, "Validation Error")
    assert error["id"] == ["Missing value"]
    failed(action(http, "package_show", id="no_such_thing"), 404, "Not Found Error")
    failed(action(http, "package_show", "POST", id={"x": 1}), 409, "Validation Error")


@pytest.mark.parametrize("prefix", PREFIXES)
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_package_search_pages_through_everything(http: httpx.Client, prefix: str, method: str) -> None:
    seen: list[str] = []
    start = 0
    while True:
        result = ok(action(http, "package_search", method, prefix, q="*:*", rows=4, start=start))
        assert result["count"] == len(PUBLISHED)
        if not result["results"]:
            break
        seen += [r["name"] for r in result["results"]]
        start += 4
    assert sorted(seen) == PUBLISHED and len(seen) == len(set(seen))


def test_package_search_default_rows_and_zero_rows(http: httpx.Client) -> None:
    result = ok(action(http, "package_search"))
    assert (result["count"], len(result["results"])) == (len(PUBLISHED), 10)
    assert set(result) >= {"count", "results", "facets", "search_facets", "sort"}
    counted = ok(action(http, "package_search", rows=0, q="人口"))
    assert (counted["count"], counted["results"]) == (4, [])


@pytest.mark.parametrize(
    ("fq", "expected"),
    [
        (
            f"organization:{organization_name(MARKET['uscc'])}",
            ["enterprise_registry", "fullwidth_catalog", "hostile_name", "licence_permits"],
        ),
        (
            f"owner_org:{MARKET['uscc']}",
            ["enterprise_registry", "fullwidth_catalog", "hostile_name", "licence_permits"],
        ),
        (
            f'organization:"{POPULATION["name"]}"',
            ["housing_subsidy", "population_register", "population_yearbook", "school_enrolment"],
        ),
        ("res_format:xlsx", ["fullwidth_catalog", "licence_permits", "population_yearbook"]),
        (
            "res_format:(MySQL OR RESTful)",
            ["enterprise_registry", "housing_subsidy", "population_register", "traffic_flow"],
        ),
        ("tags:户籍 AND share_type:无条件共享", ["population_yearbook", "school_enrolment"]),
        ("+tags:法人 +open_to_public:true", ["enterprise_registry"]),
        ("groups:department", ["hostile_name", "licence_permits"]),
        ("update_cycle:实时", ["traffic_flow", "bus_line_08"]),
        ("share_type:授权共享", ["housing_subsidy", "licence_permits", "population_register"]),
        ("+dataset_type:dataset +state:active *:*", PUBLISHED),
        ("state:deleted", []),
        ("", PUBLISHED),
    ],
)
def test_package_search_fq(http: httpx.Client, fq: str, expected: list[str]) -> None:
    for method in ("GET", "POST"):
        result = ok(action(http, "package_search", method, fq=fq, rows=1000))
        assert sorted(r["name"] for r in result["results"]) == sorted(expected), (method, fq)
        assert result["count"] == len(expected)


def test_package_search_q_with_fields(http: httpx.Client) -> None:
    result = ok(
        action(http, "package_search", q=f"人口 organization:{organization_name(POPULATION['uscc'])} res_format:csv")
    )
    assert [r["name"] for r in result["results"]] == ["school_enrolment"]
    assert ok(action(http, "package_search", q="title:人口统计"))["count"] == 1


@pytest.mark.parametrize(
    ("sort", "key"),
    [
        ("name asc", lambda names: sorted(names)),
        ("name desc", lambda names: sorted(names, reverse=True)),
        ("title_string asc", lambda names: sorted(names, key=lambda n: (BY_ID[n]["name"], n))),
        ("score desc, name asc", lambda names: sorted(names)),
    ],
)
def test_package_search_sort(http: httpx.Client, sort: str, key: Any) -> None:
    result = ok(action(http, "package_search", sort=sort, rows=1000))
    assert [r["name"] for r in result["results"]] == key(PUBLISHED)
    assert result["sort"] == sort


def test_package_search_sort_by_metadata_modified(http: httpx.Client) -> None:
    results = ok(action(http, "package_search", sort="metadata_modified desc", rows=1000))["results"]
    stamps = [r["metadata_modified"] for r in results]
    assert stamps == sorted(stamps, reverse=True)


def test_package_search_facets(http: httpx.Client) -> None:
    result = ok(
        action(
            http,
            "package_search",
            "POST",
            q="人口",
            rows=0,
            **{"facet.field": ["organization", "res_format", "tags", "groups", "license_id"]},
        )
    )
    assert result["facets"]["organization"] == {organization_name(POPULATION["uscc"]): 4}
    assert result["facets"]["res_format"] == {"MySQL": 1, "xlsx": 1, "RESTful": 1, "csv": 1}
    assert result["facets"]["tags"] == {"人口": 4, "户籍": 4}
    assert result["facets"]["groups"] == {"base": 4}
    assert result["facets"]["license_id"] == {}
    items = result["search_facets"]["organization"]["items"]
    assert items == [{"name": organization_name(POPULATION["uscc"]), "display_name": POPULATION["name"], "count": 4}]
    by_get = ok(http.get("/api/3/action/package_search", params={"q": "人口", "rows": 0, "facet.field": '["groups"]'}))
    assert by_get["facets"] == {"groups": {"base": 4}}


def test_package_search_fl(http: httpx.Client) -> None:
    result = ok(action(http, "package_search", q="traffic", fl="id,name,title"))
    assert result["results"] == [{"id": "traffic_flow", "name": "traffic_flow", "title": BY_ID["traffic_flow"]["name"]}]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"rows": -1}, "rows"),
        ({"rows": "-5"}, "rows"),
        ({"rows": 1001}, "rows"),
        ({"rows": 10**30}, "rows"),
        ({"rows": "ten"}, "rows"),
        ({"rows": 1.5}, "rows"),
        ({"rows": True}, "rows"),
        ({"start": -1}, "start"),
        ({"start": 2**40}, "start"),
        ({"start": "1; DROP TABLE catalog_entries"}, "start"),
        ({"sort": "colour desc"}, "sort"),
        ({"sort": "name sideways"}, "sort"),
        ({"sort": "name asc; DROP TABLE x"}, "sort"),
        ({"facet.limit": "many"}, "facet.limit"),
        ({"facet.field": "[not json"}, "facet.field"),
        ({"q": ["a", "b"]}, "q"),
    ],
)
def test_package_search_bad_parameters_are_validation_errors(
    http: httpx.Client, params: dict[str, Any], field: str
) -> None:
    for method in ("GET", "POST"):
        if method == "GET" and isinstance(params.get("q"), list):
            continue
        error = failed(action(http, "package_search", method, **params), 409, "Validation Error")
        assert field in error and error["message"], error


@pytest.mark.parametrize(
    "params",
    [
        {"fq": "colour:red"},
        {"fq": "organization:no-such-org"},
        {"fq": "organization:x' OR 1=1 --"},
        {"fq": "-organization:abc"},
        {"fq": "res_format:csv OR res_format:xlsx"},
        {"fq": "res_format:(csv AND xlsx)"},
        {"fq": "tags:不存在的分类"},
        {"fq": "groups:nothing"},
        {"fq": "open_to_public:maybe"},
        {"fq": "organization:"},
        {"fq": '"unclosed'},
        {"fq": "share_type:随便"},
        {"q": "x" * 201},
        {"q": "organization:nobody"},
        {"foo": "bar"},
    ],
)
def test_package_search_bad_queries_are_search_query_errors(http: httpx.Client, params: dict[str, Any]) -> None:
    for method in ("GET", "POST"):
        error = failed(action(http, "package_search", method, **params), 400, "Search Query Error")
        assert error["message"].startswith("Search Query is invalid:"), error


@pytest.mark.parametrize(
    "q",
    [
        "' OR 1=1 --",
        '"; DROP TABLE catalog_entries; --',
        "NEAR(人口)",
        "*",
        "%",
        "_",
        "人口*",
        "(((",
        "\\",
        "AND OR NOT",
        "🙂",
    ],
)
def test_package_search_injection_in_q_is_text(http: httpx.Client, q: str) -> None:
    for method in ("GET", "POST"):
        result = ok(action(http, "package_search", method, q=q, rows=1000))
        assert not {r["name"] for r in result["results"]} & set(UNPUBLISHED)
    assert ok(action(http, "package_list")) == PUBLISHED  # nothing was dropped


@pytest.mark.parametrize("prefix", PREFIXES)
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_organization_list(http: httpx.Client, prefix: str, method: str) -> None:
    names = ok(action(http, "organization_list", method, prefix))
    depts = [POPULATION, MARKET, TRANSPORT, {"uscc": BY_ID["archive_index"]["department"]["uscc"]}]
    assert names == sorted(organization_name(d["uscc"]) for d in depts)
    full = ok(action(http, "organization_list", method, prefix, all_fields=True, sort="package_count desc"))
    assert [(o["title"], o["package_count"]) for o in full][:2] == [
        (TRANSPORT["name"], len(BUS_LINES) + 1),
        (POPULATION["name"], 4),
    ]
    assert full[-1]["package_count"] == 0  # the archive's only entry is not published
    assert all(o["is_organization"] and o["type"] == "organization" for o in full)
    assert ok(action(http, "organization_list", method, prefix, limit=1, offset=1)) == names[1:2]


def test_organization_list_bad_parameters(http: httpx.Client) -> None:
    failed(action(http, "organization_list", sort="colour"), 409, "Validation Error")
    failed(action(http, "organization_list", all_fields="perhaps"), 409, "Validation Error")
    failed(action(http, "organization_list", limit=-1), 409, "Validation Error")


@pytest.mark.parametrize("prefix", PREFIXES)
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_organization_show(http: httpx.Client, prefix: str, method: str) -> None:
    for key in (MARKET["uscc"], organization_name(MARKET["uscc"]), MARKET["name"]):
        org = ok(action(http, "organization_show", method, prefix, id=key))
        assert (org["id"], org["title"], org["package_count"]) == (MARKET["uscc"], MARKET["name"], 4)
        assert "packages" not in org
    with_datasets = ok(action(http, "organization_show", method, prefix, id=POPULATION["uscc"], include_datasets=True))
    names = [p["name"] for p in with_datasets["packages"]]
    assert names == ["housing_subsidy", "population_register", "population_yearbook", "school_enrolment"]
    failed(action(http, "organization_show", method, prefix, id="nobody"), 404, "Not Found Error")
    failed(action(http, "organization_show", method, prefix), 409, "Validation Error")


@pytest.mark.parametrize("prefix", PREFIXES)
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_resource_show(http: httpx.Client, prefix: str, method: str) -> None:
    res = ok(action(http, "resource_show", method, prefix, id="population_register.v2"))
    assert (res["package_id"], res["version"], res["row_count"], res["format"]) == (
        "population_register",
        2,
        200,
        "MySQL",
    )
    assert ok(http.get(res["url"].removeprefix(str(http.base_url).rstrip("/"))))["id"] == "population_register.v2"
    for rid in ("population_register.v9", "population_register", "nothing.v1", "population_census_draft.v1", "."):
        failed(action(http, "resource_show", method, prefix, id=rid), 404, "Not Found Error")


@pytest.mark.parametrize("prefix", PREFIXES)
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_status_show_and_help_show(http: httpx.Client, prefix: str, method: str) -> None:
    status = ok(action(http, "status_show", method, prefix))
    assert status["ckan_version"] == CKAN_VERSION and status["site_url"] == str(http.base_url).rstrip("/")
    assert "rows" in ok(action(http, "help_show", method, prefix, name="package_search"))
    failed(action(http, "help_show", method, prefix, name="nope"), 404, "Not Found Error")


# --- CKAN's errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize("prefix", PREFIXES)
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_an_unknown_action_is_a_bad_request(http: httpx.Client, prefix: str, method: str) -> None:
    answer = action(http, "package_shwo", method, prefix)
    assert answer.status_code == 400
    assert answer.json() == "Bad request - Action name not known: package_shwo"


@pytest.mark.parametrize("name", ["package_create", "package_delete", "organization_update", "resource_patch"])
def test_write_actions_are_not_authorised(http: httpx.Client, name: str) -> None:
    error = failed(action(http, name, "POST", name="x"), 403, "Authorization Error")
    assert "read-only" in error["message"]


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        (b"{not json", {"content-type": "application/json"}),
        (b"[1, 2]", {"content-type": "application/json"}),
        (b'"just a string"', {"content-type": "application/json"}),
        (b"\xff\xfe\x00", {"content-type": "application/json"}),
        (b"{" + b'"q": "' + b"x" * 1_100_000 + b'"}', {"content-type": "application/json"}),
        (b'{"id": "enterprise_registry"', {"content-type": "application/x-www-form-urlencoded"}),
    ],
)
def test_a_bad_body_is_a_bad_request(http: httpx.Client, body: bytes, headers: dict[str, str]) -> None:
    answer = http.post("/api/3/action/package_show", content=body, headers=headers)
    assert answer.status_code == 400, answer.text
    assert answer.json().startswith("Bad request - ")


def test_a_form_post_and_json_posted_as_a_form_work(http: httpx.Client) -> None:
    form = http.post("/api/3/action/package_show", data={"id": "traffic_flow"})
    assert ok(form)["name"] == "traffic_flow"
    curl_style = http.post(
        "/api/3/action/package_show",
        content=b'{"id": "traffic_flow"}',
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert ok(curl_style)["name"] == "traffic_flow"


def test_no_hostile_request_is_a_server_error(http: httpx.Client, server: Server) -> None:
    nasty: list[Any] = ["", "'", '"', "\\", "\x00", "🙂", "-1", "1e9", "[]", "../../etc/passwd", "a" * 5000]
    for name in (
        "package_list",
        "package_show",
        "package_search",
        "organization_list",
        "organization_show",
        "resource_show",
        "status_show",
        "help_show",
    ):
        for value in nasty:
            for key in (
                "id",
                "q",
                "fq",
                "rows",
                "start",
                "sort",
                "limit",
                "offset",
                "all_fields",
                "facet.field",
                "name",
            ):
                for answer in (
                    http.get(f"/api/3/action/{name}", params={key: value}),
                    http.post(f"/api/action/{name}", json={key: value}),
                ):
                    assert answer.status_code < 500, (name, key, value, answer.text)
                    body = answer.json()
                    assert isinstance(body, dict) or str(body).startswith("Bad request"), body
    assert "Traceback" not in "".join(server.err)


def test_an_entry_id_that_is_not_a_ckan_name_gets_a_slug(tmp_path: Path) -> None:
    from catalog import ckan
    from catalog.models import DataItem, Entry

    store = build_catalog(f"sqlite:///{tmp_path / 'catalog.db'}")
    with store.session() as s:
        s.add(
            Entry(
                id="Weird ID/人口 v2",
                resource_code="101030/999998",
                name="奇怪编号的条目",
                department_uscc=POPULATION["uscc"],
                classification_axis="基础",
                classification_path=["人口", "户籍"],
                classification_code="101030",
                abstract="编号不是 CKAN 名称。",
                format_category="电子表格",
                format_type="xlsx",
                share_type="无条件共享",
                share_method="文件",
                update_cycle="每月",
                status="published",
                items=[DataItem(position=1, name="x", title="某项", type_code="C")],
            )
        )
    slug = ckan.package_name("Weird ID/人口 v2")
    assert slug.startswith("weird-id-") and slug == ckan.package_name("Weird ID/人口 v2")
    assert all(c.isascii() and (c.isalnum() or c in "-_") for c in slug) and 2 <= len(slug) <= 100
    base = "http://example.test"
    status, listed = ckan.call(store, "package_list", {}, base_url=base)
    assert status == 200 and slug in listed["result"]
    status, shown = ckan.call(store, "package_show", {"id": slug}, base_url=base)
    assert status == 200 and shown["result"]["id"] == "Weird ID/人口 v2" and shown["result"]["name"] == slug
    resource = shown["result"]["resources"][0]
    assert resource["id"] == f"{slug}.file"
    status, found = ckan.call(store, "resource_show", {"id": resource["id"]}, base_url=base)
    assert status == 200 and found["result"]["package_id"] == "Weird ID/人口 v2"
