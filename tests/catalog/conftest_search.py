"""A catalog of generated dataset specs for the search, CKAN and service tests (imported explicitly).

28 entries in three departments: 21 published (each with one version, two of them with two),
7 not published (draft, registered, withdrawn) to test visibility. A few entries are made for
the ranking and hostile-input cases: 人口 in a name, in an abstract, in a data item; ``%``, ``_``,
quotes and FTS5 syntax in a name; full-width letters; English words.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from catalog.store import CatalogStore
from pipelines.identifiers import org_code_check_char, uscc_check_char
from pipelines.spec import DatasetSpec


def gov_uscc(n: int) -> str:
    """A valid USCC of a government body (authority 11)."""
    org = f"MB{n:06d}"
    body = f"11310000{org}{org_code_check_char(org)}"
    return body + uscc_check_char(body)


POPULATION = {"name": "上海市人口管理办公室", "uscc": gov_uscc(101), "region": "310000"}
MARKET = {"name": "上海市市场监督管理局", "uscc": gov_uscc(202)}
TRANSPORT = {"name": "上海市交通委员会", "uscc": gov_uscc(303)}
EMPTY = {"name": "上海市档案局", "uscc": gov_uscc(404)}  # a department whose only entry is a draft

#: classification (axis, labels, code prefix)
HOUSEHOLD = ("基础", ["人口", "户籍"], "101030")
COMPANY = ("基础", ["法人", "企业"], "102010")
BUS = ("主题", ["交通", "公共交通"], "205001")
LICENCE = ("部门", ["市场监管", "许可"], "310002")


@dataclass(frozen=True)
class Made:
    id: str
    status: str
    department: dict[str, Any]


def _column(name: str, title: str, **more: Any) -> dict[str, Any]:
    return {"name": name, "title": title, **more}


SPECIAL: list[dict[str, Any]] = [
    {
        "id": "population_register",
        "name": "常住人口信息",
        "department": POPULATION,
        "classification": HOUSEHOLD,
        "abstract": "全市常住人口的户籍与居住信息，按日更新。",
        "columns": [
            _column("resident_id", "公民身份号码"),
            _column("person_name", "姓名"),
            _column("address", "居住地址"),
        ],
        "sharing": {"type": "有条件共享", "condition": "用于政务服务", "method": "数据库"},
        "format": {"category": "数据库", "type": "MySQL"},
        "update_cycle": "每日",
        "status": "published",
        "versions": 2,
    },
    {
        "id": "population_yearbook",
        "name": "人口统计年报",
        "department": POPULATION,
        "classification": HOUSEHOLD,
        "abstract": "年度统计汇总。",
        "columns": [_column("year", "年份", type="integer"), _column("total", "总数", type="integer")],
        "sharing": {"type": "无条件共享", "method": "文件"},
        "format": {"category": "电子表格", "type": "xlsx"},
        "open": {"open": True},
        "update_cycle": "每年",
        "status": "published",
    },
    {
        "id": "housing_subsidy",
        "name": "住房补贴发放记录",
        "department": POPULATION,
        "classification": HOUSEHOLD,
        "abstract": "按户籍人口发放的住房补贴。",
        "columns": [_column("resident_id", "公民身份号码"), _column("amount", "金额", type="money")],
        "sharing": {"type": "授权共享", "condition": "经审批", "method": "接口"},
        "format": {"category": "服务接口", "type": "RESTful"},
        "update_cycle": "每月",
        "status": "published",
    },
    {
        "id": "school_enrolment",
        "name": "学校招生名额",
        "department": POPULATION,
        "classification": HOUSEHOLD,
        "abstract": "各区学校的招生计划。",
        "columns": [_column("school", "学校名称"), _column("household_population", "户籍人口数", type="integer")],
        "sharing": {"type": "无条件共享", "method": "文件"},
        "format": {"category": "电子表格", "type": "csv"},
        "update_cycle": "每年",
        "status": "published",
    },
    {
        "id": "population_census_draft",
        "name": "人口普查底册",
        "department": POPULATION,
        "classification": HOUSEHOLD,
        "abstract": "人口普查的底册（尚未发布）。",
        "columns": [_column("resident_id", "公民身份号码")],
        "sharing": {"type": "不予共享", "condition": "《统计法》第二十五条", "method": "数据库"},
        "format": {"category": "数据库", "type": "PostgreSQL"},
        "update_cycle": "其他",
        "status": "draft",
    },
    {
        "id": "archive_index",
        "name": "档案目录索引",
        "department": EMPTY,
        "classification": HOUSEHOLD,
        "abstract": "馆藏档案的目录索引，包含人口档案。",
        "columns": [_column("archive_no", "档号")],
        "sharing": {"type": "无条件共享", "method": "文件"},
        "format": {"category": "电子文件", "type": "pdf"},
        "update_cycle": "其他",
        "status": "registered",
    },
    {
        "id": "enterprise_registry",
        "name": "企业登记信息",
        "department": MARKET,
        "classification": COMPANY,
        "abstract": "企业法人的登记事项。",
        "columns": [
            _column("uscc", "统一社会信用代码", primary_key=True, nullable=False),
            _column("legal_person", "法定代表人"),
            _column("capital", "注册资本", type="decimal"),
        ],
        "sharing": {"type": "无条件共享", "method": "数据库"},
        "format": {"category": "数据库", "type": "MySQL"},
        "open": {"open": True, "condition": "不含自然人信息"},
        "update_cycle": "每日",
        "status": "published",
        "versions": 2,
    },
    {
        "id": "licence_permits",
        "name": "食品经营许可证",
        "department": MARKET,
        "classification": LICENCE,
        "abstract": "食品经营许可的发证记录。",
        "columns": [_column("permit_no", "许可证编号"), _column("holder", "持证企业")],
        "sharing": {"type": "有条件共享", "condition": "监管用途", "method": "文件"},
        "format": {"category": "电子表格", "type": "xlsx"},
        "update_cycle": "每周",
        "status": "published",
    },
    {
        "id": "hostile_name",
        "name": '100% 完成率_统计 "引号" (括号) NEAR-*',
        "department": MARKET,
        "classification": LICENCE,
        "abstract": '名称里有特殊字符：% _ " ( ) * - NEAR OR AND NOT ^ : {}',
        "columns": [_column("value", "数值", type="float")],
        "sharing": {"type": "无条件共享", "method": "文件"},
        "format": {"category": "自描述格式", "type": "JSON"},
        "update_cycle": "每季度",
        "status": "published",
    },
    {
        "id": "fullwidth_catalog",
        "name": "ＡＢＣ公司名录",
        "department": MARKET,
        "classification": COMPANY,
        "abstract": "全角字母的名称。",
        "columns": [_column("company", "公司名称")],
        "sharing": {"type": "无条件共享", "method": "文件"},
        "format": {"category": "电子表格", "type": "xlsx"},
        "update_cycle": "半年",
        "status": "published",
    },
    {
        "id": "traffic_flow",
        "name": "Traffic Flow Statistics 道路流量",
        "department": TRANSPORT,
        "classification": BUS,
        "abstract": "Hourly vehicle counts on main roads.",
        "columns": [_column("road_id", "道路编号"), _column("vehicle_count", "车流量", type="integer")],
        "sharing": {"type": "无条件共享", "method": "接口"},
        "format": {"category": "服务接口", "type": "RESTful"},
        "open": {"open": True},
        "update_cycle": "实时",
        "status": "published",
    },
    {
        "id": "bus_routes_withdrawn",
        "name": "公交线路（旧）",
        "department": TRANSPORT,
        "classification": BUS,
        "abstract": "已下架的公交线路数据。",
        "columns": [_column("route_id", "线路编号")],
        "sharing": {"type": "无条件共享", "method": "文件"},
        "format": {"category": "电子表格", "type": "csv"},
        "update_cycle": "每月",
        "status": "withdrawn",
    },
]

CYCLES = ["实时", "每日", "每周", "每月", "每季度", "半年", "每年", "其他"]


def _fillers() -> list[dict[str, Any]]:
    found = []
    for i in range(1, 17):
        published = i not in (5, 11, 16, 13)
        found.append(
            {
                "id": f"bus_line_{i:02d}",
                "name": f"公交线路第{i:02d}组客流",
                "department": TRANSPORT,
                "classification": BUS,
                "abstract": f"第{i:02d}组公交线路的刷卡客流。",
                "columns": [_column("route_id", "线路编号"), _column("passengers", "客流量", type="integer")],
                "sharing": {"type": "无条件共享", "method": "文件"},
                "format": {"category": "电子表格", "type": "csv"},
                "update_cycle": CYCLES[i % len(CYCLES)],
                "status": "published" if published else ("draft" if i % 2 else "registered"),
            }
        )
    return found


ENTRIES: list[dict[str, Any]] = SPECIAL + _fillers()
PUBLISHED = sorted(e["id"] for e in ENTRIES if e["status"] == "published")
UNPUBLISHED = sorted(e["id"] for e in ENTRIES if e["status"] != "published")


def spec_of(e: dict[str, Any], seq: int) -> DatasetSpec:
    axis, labels, code = e["classification"]
    return DatasetSpec.model_validate(
        {
            "id": e["id"],
            "name": e["name"],
            "department": e["department"],
            "source": {"connector": "csv", "options": {"path": "source.csv"}},
            "columns": e["columns"],
            "catalog": {
                "classification": {"axis": axis, "path": labels},
                "resource_code": f"{code}/{seq:06d}",
                "abstract": e["abstract"],
                "sharing": e["sharing"],
                "format": e["format"],
                "open": e.get("open", {"open": False}),
                "update_cycle": e["update_cycle"],
            },
        }
    )


def build_catalog(url: str) -> CatalogStore:
    """Register every entry of :data:`ENTRIES` into the catalog at ``url`` and give each its status."""
    store = CatalogStore(url)
    for seq, e in enumerate(ENTRIES, start=1):
        store.register(spec_of(e, seq), source="generated for tests")
        if e["status"] in ("published", "withdrawn"):
            for number in range(1, e.get("versions", 1) + 1):
                store.add_version(
                    e["id"],
                    number=number,
                    run_id=f"2026-11-{20 + number}",
                    row_count=100 * number,
                    content_sha256=f"{seq:02d}{number:02d}".ljust(64, "a"),
                    fingerprint=f"{seq:02d}{number:02d}".ljust(64, "f"),
                    schema=[{"name": c["name"], "type": c.get("type", "string")} for c in e["columns"]],
                    quality={"score": 0.9},
                    lineage={"source": "generated"},
                    location=f"exchange/{e['id']}/v{number:06d}",
                    watermark=None,
                )
        if e["status"] != "published":
            from catalog.models import Entry

            with store.session() as s:
                entry = s.get(Entry, e["id"])
                assert entry is not None
                entry.status = e["status"]
                entry.status_changed_at = dt.datetime(2026, 11, 24, tzinfo=dt.UTC)
    return store


# --- a real server ---------------------------------------------------------------------------------


@dataclass
class Server:
    """``govdata serve`` running in a subprocess; its output is drained into ``out`` and ``err``."""

    process: subprocess.Popen[str]
    base: str
    banner: list[str]
    out: list[str]
    err: list[str]
    readers: list[threading.Thread]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> tuple[int, str, str]:
        """Send ``sig``; wait for the end; return the exit code and what it printed after the banner."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"govdata serve did not stop on signal {sig}: {''.join(self.err)}") from None
        for reader in self.readers:
            reader.join(timeout=10)
        return self.process.returncode, "".join(self.out), "".join(self.err)


def venv_env(**extra: str) -> dict[str, str]:
    """The environment for the venv's commands (ckanapi's workers are found on PATH)."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.pop("GOVDATA_CATALOG_URL", None)
    env.update(extra)
    return env


def _drain(stream: Any, into: list[str]) -> threading.Thread:
    thread = threading.Thread(target=lambda: into.extend(iter(stream.readline, "")), daemon=True)
    thread.start()
    return thread


def start_server(home: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 60) -> Server:
    """Start ``govdata serve --port 0 --home HOME`` and wait until it answers /healthz."""
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "govdata"), "serve", "--port", "0", "--home", str(home), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env or venv_env(),
    )
    assert process.stdout is not None and process.stderr is not None
    err: list[str] = []
    readers = [_drain(process.stderr, err)]
    banner: list[str] = []
    for line in iter(process.stdout.readline, ""):
        banner.append(line.rstrip("\n"))
        if line.startswith("Ctrl-C"):
            break
    base = next((m.group(1) for line in banner if (m := re.search(r"service on (http://\S+)", line))), None)
    if base is None:
        process.kill()
        process.wait()
        raise AssertionError(f"govdata serve did not start: {banner} {''.join(err)}")
    out: list[str] = []
    readers.append(_drain(process.stdout, out))
    server = Server(process, base, banner, out, err, readers)
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{base}/healthz", timeout=5) as answer:
                if answer.status == 200:
                    return server
        except OSError:
            pass
        if time.monotonic() > deadline or process.poll() is not None:
            server.stop(signal.SIGKILL)
            raise AssertionError(f"govdata serve does not answer: {''.join(err)}")
        time.sleep(0.1)
