"""The catalog as CKAN's action API (v3), read-only: actions, CKAN's shapes, CKAN's envelopes and errors.

:func:`call` answers one action with ``(HTTP status, body)``; the platform service
(:mod:`exchange.service`) serves it at ``/api/3/action/{name}`` and ``/api/action/{name}``.
Clients such as ``ckanapi`` work against it unchanged.

How entries map to CKAN
    ============================  ==================================================================
    package ``id``                the entry id (dataset id)
    package ``name``              a URL-safe slug of the entry id (the id itself when it is one)
    ``title`` / ``notes``         信息资源名称 / 信息资源摘要
    ``organization``              the providing department: ``id`` its USCC, ``name`` the USCC in
                                  lower case, ``title`` its name
    ``groups``                    the classification axis: ``base`` 基础, ``theme`` 主题,
                                  ``department`` 部门
    ``tags``                      the names of the entry's 项/目/细目 classification nodes
    ``resources``                 one per published version, each with the entry's 共享方式
                                  (delivery method), its 信息资源格式类型 as ``format``, rows,
                                  sha256 and time; an entry without versions has one resource for
                                  its delivery method; 不予共享 (not shared) entries have none
    ``extras``                    the 13 core elements (classification, resource_code, provider,
                                  provider_code, abstract, format_*, data_items as JSON, share_*,
                                  open_*, update_cycle, publish_date, related_resources) and status
    ``metadata_created/modified`` the entry's creation; its latest change, status change or version
    ``state``                     ``active`` (only published entries are shown to anonymous callers)
    ============================  ==================================================================

``package_search``: ``q`` is keywords for :mod:`catalog.search` (``*:*`` or empty: everything;
``field:value`` words for the fields below act as filters); ``fq`` takes ``field:value``
clauses joined by spaces or ``AND``, a value quoted (``"…"``) or a list ``(a OR b)``, on
``organization``/``owner_org`` (USCC, its lower-case name, or the department's name),
``res_format`` (format type or category), ``tags`` (classification names), ``groups`` (axis),
``share_type``, ``update_cycle``, ``format_category``, ``open_to_public`` (true/false), and the
no-ops CKAN clients send (``dataset_type:dataset``, ``state:active``, ``capacity:public``).
``sort`` is ``field direction, …`` over ``score``, ``name``, ``title_string``/``title``,
``metadata_modified``, ``metadata_created``; ``start``/``rows`` page (rows 0…1000).

Errors: unknown action → 400 with CKAN's bare ``"Bad request - Action name not known: …"``;
a bad ``q``/``fq`` → 400 ``Search Query Error``; a bad parameter value → 409 ``Validation
Error`` (``{"rows": ["…"], "message": "…"}``); nothing visible by that id → 404 ``Not Found
Error``; CKAN's write actions → 403 ``Authorization Error`` (this API is read-only).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from catalog.access import ANONYMOUS, Viewer, visibility_filter
from catalog.models import ClassificationNode, Department, Entry
from catalog.search import (
    AXIS_NAMES,
    MAX_ROWS,
    MAX_START,
    Filters,
    SearchError,
    search,
    tag_names,
)
from catalog.store import CatalogStore
from pipelines.errors import GovdataError
from pipelines.spec import SHARE_TYPE_ALIASES, ClassificationAxis, ShareMethod, ShareType

__all__ = ["ACTIONS", "CKAN_VERSION", "CkanError", "call", "organization_name", "package_name"]

#: The CKAN version whose API shapes this follows (``status_show``).
CKAN_VERSION = "2.10.4"
SITE_TITLE = "政务数据资源目录"

GROUPS: dict[ClassificationAxis, tuple[str, str]] = {
    ClassificationAxis.BASE: ("base", "基础信息资源"),
    ClassificationAxis.THEME: ("theme", "主题信息资源"),
    ClassificationAxis.DEPARTMENT: ("department", "部门信息资源"),
}
METHOD_SLUGS = {ShareMethod.DATABASE: "database", ShareMethod.FILE: "file", ShareMethod.API: "api"}
METHOD_TITLES = {ShareMethod.DATABASE: "库表交换", ShareMethod.FILE: "文件交换", ShareMethod.API: "接口服务"}

#: CKAN's write actions: refused with an Authorization Error, the API being read-only.
WRITE_ACTIONS = frozenset(
    f"{thing}_{verb}"
    for thing in ("package", "resource", "organization", "group", "user", "tag", "member")
    for verb in ("create", "update", "patch", "delete", "purge", "revise")
) | {"package_owner_org_update", "bulk_update_public", "bulk_update_private", "bulk_update_delete", "dataset_purge"}

_NAME = re.compile(r"^[a-z0-9_-]{2,100}$")


# --- errors --------------------------------------------------------------------------------------


class CkanError(Exception):
    """An action's failure as CKAN reports it: HTTP status and the ``error`` object."""

    def __init__(self, status: int, kind: str, message: str, fields: Mapping[str, list[str]] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.error: dict[str, Any] = {"__type": kind, "message": message, **(fields or {})}


def not_found(what: str) -> CkanError:
    return CkanError(404, "Not Found Error", f"Not found: {what}")


def invalid(field: str, message: str) -> CkanError:
    return CkanError(409, "Validation Error", f"{field}: {message}", {field: [message]})


def bad_query(message: str) -> CkanError:
    return CkanError(400, "Search Query Error", f"Search Query is invalid: {message}")


# --- parameters ----------------------------------------------------------------------------------


def _int(params: Mapping[str, Any], key: str, default: int | None, low: int, high: int) -> int | None:
    value = params.get(key)
    if value is None or value == "":
        return default
    if isinstance(value, bool | list | dict | float):
        raise invalid(key, "Invalid integer")
    text = str(value).strip()
    if not re.fullmatch(r"[+-]?\d{1,19}", text):
        raise invalid(key, "Invalid integer")
    number = int(text)
    if number < low:
        raise invalid(key, f"Must be a natural number ({low} or more)" if low >= 0 else f"Must be {low} or more")
    if number > high:
        raise invalid(key, f"Must be {high} or less")
    return number


def _bool(params: Mapping[str, Any], key: str, default: bool) -> bool:
    value = params.get(key)
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise invalid(key, "Invalid boolean value: use true or false")


def _str(params: Mapping[str, Any], key: str, default: str = "", limit: int = 2000) -> str:
    value = params.get(key)
    if value is None:
        return default
    if isinstance(value, list | dict):
        raise invalid(key, "Must be a string")
    text = str(value)
    if len(text) > limit:
        raise invalid(key, f"Is {len(text)} characters long; at most {limit} are accepted")
    return text


def _strings(params: Mapping[str, Any], key: str) -> list[str]:
    """A list parameter: a JSON list, a JSON-encoded list (CKAN's GET form), or one string."""
    value = params.get(key)
    if value is None or value == "":
        return []
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = json.loads(text)
            except ValueError:
                raise invalid(key, 'Must be a list of strings, e.g. ["organization", "tags"]') from None
        else:
            value = [text]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise invalid(key, "Must be a list of strings")
    return [v.strip() for v in value if v.strip()]


def _id(params: Mapping[str, Any], *keys: str) -> str:
    for key in keys:
        value = params.get(key)
        if value is not None and value != "":
            if not isinstance(value, str | int) or isinstance(value, bool):
                raise invalid(key, "Must be a string")
            text = str(value).strip()
            if len(text) > 300:
                raise invalid(key, "Is too long")
            return text
    raise invalid(keys[0], "Missing value")


# --- names and shapes ----------------------------------------------------------------------------


def package_name(entry_id: str) -> str:
    """The CKAN name of an entry: its id when that is a valid CKAN name, else a slug with a short hash."""
    if _NAME.match(entry_id):
        return entry_id
    folded = unicodedata.normalize("NFKC", entry_id).lower()
    slug = re.sub(r"[^a-z0-9_-]+", "-", folded).strip("-")[:80] or "entry"
    return f"{slug}-{hashlib.sha256(entry_id.encode('utf-8')).hexdigest()[:8]}"


def organization_name(uscc: str) -> str:
    """The CKAN name of a department: its USCC in lower case."""
    return uscc.strip().lower()


def _iso(value: dt.datetime | None) -> str | None:
    """CKAN's timestamps: UTC without an offset, e.g. ``2026-11-24T08:00:00.123456``."""
    if value is None:
        return None
    utc = value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
    return utc.replace(tzinfo=None).isoformat()


def _modified(e: Entry) -> dt.datetime:
    times = [e.updated_at, *(v.published_at for v in e.versions), e.status_changed_at]
    found = [t.replace(tzinfo=dt.UTC) if t.tzinfo is None else t for t in times if t is not None]
    return max(found)


@dataclass
class Context:
    """One call: the store's session, the public base URL, the caller."""

    session: Session
    base_url: str
    viewer: Viewer
    _nodes: dict[str, str] | None = None

    @property
    def nodes(self) -> dict[str, str]:
        if self._nodes is None:
            self._nodes = {
                str(c): str(n)
                for c, n in self.session.execute(select(ClassificationNode.code, ClassificationNode.name))
            }
        return self._nodes

    def url(self, action: str, **query: str) -> str:
        args = "&".join(f"{k}={quote(v, safe='')}" for k, v in query.items())
        return f"{self.base_url}/api/3/action/{action}" + (f"?{args}" if args else "")


def organization_dict(ctx: Context, dept: Department, package_count: int | None = None) -> dict[str, Any]:
    extras = [{"key": "uscc", "value": dept.uscc}, {"key": "level", "value": dept.level or ""}]
    if dept.region:
        extras.append({"key": "region", "value": dept.region})
    found: dict[str, Any] = {
        "id": dept.uscc,
        "name": organization_name(dept.uscc),
        "title": dept.name,
        "display_name": dept.name,
        "description": f"{dept.name}（统一社会信用代码 {dept.uscc}）",
        "type": "organization",
        "is_organization": True,
        "state": "active",
        "approval_status": "approved",
        "image_url": "",
        "image_display_url": "",
        "created": None,
        "num_followers": 0,
        "extras": sorted(extras, key=lambda x: x["key"]),
    }
    if package_count is not None:
        found["package_count"] = package_count
    return found


def _resources(ctx: Context, e: Entry, name: str) -> list[dict[str, Any]]:
    share = SHARE_TYPE_ALIASES.get(e.share_type)
    if share is ShareType.NOT_SHARED:
        return []  # cannot be requested: nothing to deliver (as in the DCAT-AP feed)
    try:
        method = ShareMethod(e.share_method)
    except ValueError:
        method = ShareMethod.FILE
    common = {
        "package_id": e.id,
        "format": e.format_type,
        "url_type": None,
        "mimetype": None,
        "size": None,
        "state": "active",
        "share_method": method.value,
        "share_method_type": e.share_method_type or "",
    }
    found: list[dict[str, Any]] = []
    versions = sorted(e.versions, key=lambda v: v.number)
    if not versions:
        rid = f"{name}.{METHOD_SLUGS[method]}"
        found.append(
            {
                **common,
                "id": rid,
                "name": f"{e.name}（{METHOD_TITLES[method]}）",
                "description": f"共享方式：{method.value}；尚无已发布的版本。",
                "url": ctx.url("resource_show", id=rid),
                "hash": "",
                "created": _iso(e.created_at),
                "last_modified": None,
                "metadata_modified": _iso(e.updated_at),
                "position": 0,
                "version": None,
                "row_count": None,
            }
        )
    for position, v in enumerate(versions):
        rid = f"{name}.v{v.number}"
        score = (v.quality or {}).get("score")
        quality = f"，质量评分 {score:.3f}" if isinstance(score, int | float) else ""
        found.append(
            {
                **common,
                "id": rid,
                "name": f"{e.name} 第{v.number}版",
                "description": f"第{v.number}版：{v.row_count} 行{quality}；共享方式：{method.value}。",
                "url": ctx.url("resource_show", id=rid),
                "hash": v.content_sha256,
                "created": _iso(v.published_at),
                "last_modified": _iso(v.published_at),
                "metadata_modified": _iso(v.published_at),
                "position": position,
                "version": v.number,
                "row_count": v.row_count,
                "quality_score": score,
            }
        )
    return found


def package_dict(ctx: Context, e: Entry, visible_codes: set[str]) -> dict[str, Any]:
    """The CKAN package of entry ``e`` (loaded with its items, versions and department)."""
    name = package_name(e.id)
    try:
        axis = ClassificationAxis(e.classification_axis)
        group_name, group_title = GROUPS[axis]
        groups = [
            {
                "id": group_name,
                "name": group_name,
                "title": group_title,
                "display_name": group_title,
                "description": "",
                "image_display_url": "",
            }
        ]
    except (ValueError, KeyError):
        groups = []
    tags = [
        {"id": label, "name": label, "display_name": label, "state": "active", "vocabulary_id": None}
        for label in tag_names(e.classification_code, ctx.nodes)
    ]
    items = [
        {
            "name": i.name,
            "title": i.title,
            "type": i.type_code,
            "length": i.length,
            "primary_key": i.primary_key,
            "nullable": i.nullable,
            "sensitive": i.sensitive,
            "share_type": i.share_type,
        }
        for i in e.items
    ]
    related = [str(c) for c in (e.related_resources or []) if str(c) in visible_codes]
    elements: dict[str, str] = {
        "classification": "/".join([e.classification_axis, *map(str, e.classification_path or [])]),
        "classification_code": e.classification_code,
        "resource_code": e.resource_code,
        "provider": e.department.name,
        "provider_code": e.department_uscc,
        "abstract": e.abstract or "",
        "format_category": e.format_category,
        "format_type": e.format_type,
        "format_other": e.format_other or "",
        "data_items": json.dumps(items, ensure_ascii=False),
        "share_type": e.share_type,
        "share_condition": e.share_condition or "",
        "share_method": e.share_method,
        "share_method_type": e.share_method_type or "",
        "open_to_public": "true" if e.open_to_public else "false",
        "open_condition": e.open_condition or "",
        "open_theme": e.open_theme or "",
        "update_cycle": e.update_cycle,
        "publish_date": e.publish_date.isoformat() if e.publish_date else "",
        "related_resources": ",".join(related),
        "related_business": e.related_business or "",
        "sub_organisation": e.sub_organisation or "",
        "status": e.status,
    }
    resources = _resources(ctx, e, name)
    latest = max((v.number for v in e.versions), default=None)
    return {
        "id": e.id,
        "name": name,
        "title": e.name,
        "notes": e.abstract or "",
        "url": ctx.url("package_show", id=name),
        "version": None if latest is None else str(latest),
        "type": "dataset",
        "state": "active",
        "private": False,
        "isopen": bool(e.open_to_public),
        "license_id": None,
        "license_title": None,
        "author": e.department.name,
        "author_email": None,
        "maintainer": e.sub_organisation or e.department.name,
        "maintainer_email": None,
        "creator_user_id": None,
        "owner_org": e.department_uscc,
        "organization": organization_dict(ctx, e.department),
        "groups": groups,
        "tags": tags,
        "num_tags": len(tags),
        "resources": resources,
        "num_resources": len(resources),
        "extras": [{"key": k, "value": v} for k, v in sorted(elements.items())],
        "metadata_created": _iso(e.created_at),
        "metadata_modified": _iso(_modified(e)),
        "relationships_as_object": [],
        "relationships_as_subject": [],
    }


def _load(ctx: Context, ids: list[str]) -> list[Entry]:
    """Visible entries by id, in the order given, with what a package needs."""
    if not ids:
        return []
    found = {
        e.id: e
        for e in ctx.session.scalars(
            select(Entry)
            .where(Entry.id.in_(ids), visibility_filter(ctx.viewer))
            .options(selectinload(Entry.items), selectinload(Entry.versions), selectinload(Entry.department))
        )
    }
    return [found[i] for i in ids if i in found]


def _packages(ctx: Context, entries: list[Entry]) -> list[dict[str, Any]]:
    codes = {str(c) for e in entries for c in (e.related_resources or [])}
    visible = (
        set(
            ctx.session.scalars(
                select(Entry.resource_code).where(Entry.resource_code.in_(sorted(codes)), visibility_filter(ctx.viewer))
            )
        )
        if codes
        else set()
    )
    return [package_dict(ctx, e, visible) for e in entries]


def _find_entry(ctx: Context, key: str) -> Entry:
    """A visible entry by id, CKAN name or resource code; 404 otherwise (an invisible one is not found either)."""
    session = ctx.session
    entry_id: str | None = None
    if session.scalar(select(Entry.id).where(Entry.id == key, visibility_filter(ctx.viewer))) is not None:
        entry_id = key
    elif (by_code := session.scalar(select(Entry.id).where(Entry.resource_code == key))) is not None:
        entry_id = by_code
    elif _NAME.match(key):
        for candidate in session.scalars(select(Entry.id).where(visibility_filter(ctx.viewer))):
            if not _NAME.match(candidate) and package_name(candidate) == key:
                entry_id = candidate
                break
    loaded = _load(ctx, [entry_id]) if entry_id is not None else []
    if not loaded:
        raise not_found(f"no dataset {key!r}")
    return loaded[0]


def _find_department(ctx: Context, key: str) -> Department:
    session = ctx.session
    dept = session.get(Department, key.strip().upper())
    if dept is None:
        dept = session.scalars(
            select(Department).where(Department.name == key.strip()).order_by(Department.uscc)
        ).first()
    if dept is None:
        raise not_found(f"no organization {key!r}")
    return dept


def _counts(ctx: Context) -> dict[str, int]:
    from sqlalchemy import func

    rows = ctx.session.execute(
        select(Entry.department_uscc, func.count()).where(visibility_filter(ctx.viewer)).group_by(Entry.department_uscc)
    )
    return {str(u): int(n) for u, n in rows}


# --- actions -------------------------------------------------------------------------------------


def package_list(ctx: Context, params: Mapping[str, Any]) -> list[str]:
    """Return the names of the site's datasets (packages), sorted.

    :param limit: how many names to return (optional)
    :param offset: where to start (optional, with limit)
    """
    limit = _int(params, "limit", None, 0, 100_000)
    offset = _int(params, "offset", 0, 0, MAX_START) or 0
    names = sorted(package_name(i) for i in ctx.session.scalars(select(Entry.id).where(visibility_filter(ctx.viewer))))
    return names[offset:] if limit is None else names[offset : offset + limit]


def package_show(ctx: Context, params: Mapping[str, Any]) -> dict[str, Any]:
    """Return a dataset (package): the catalog entry with its versions as resources.

    :param id: the id or name of the dataset (or its resource code)
    """
    entry = _find_entry(ctx, _id(params, "id", "name_or_id"))
    return _packages(ctx, [entry])[0]


#: The package_search parameters accepted (CKAN's; the ones without meaning here are ignored).
SEARCH_PARAMETERS = frozenset(
    {
        "q",
        "fq",
        "fq_list",
        "sort",
        "rows",
        "start",
        "facet",
        "facet.field",
        "facet.limit",
        "facet.mincount",
        "fl",
        "include_private",
        "include_drafts",
        "include_deleted",
        "use_default_schema",
        "defType",
        "qf",
        "hl",
        "callback",
    }
)

#: fq (and q) fields → the search filter they set.
FQ_FIELDS = {
    "organization": "department",
    "owner_org": "department",
    "res_format": "format",
    "format_category": "format",
    "tags": "classification",
    "groups": "axis",
    "share_type": "share_type",
    "update_cycle": "update_cycle",
    "open_to_public": "open",
    "isopen": "open",
    "dataset_type": "noop:dataset",
    "type": "noop:dataset",
    "state": "noop:active",
    "capacity": "noop:public",
    "private": "noop:false",
}
#: Keyword fields in q (their value is searched like any word).
TEXT_FIELDS = ("text", "title", "notes", "name")

_VALUE = r'"(?:[^"\\]|\\.)*"|\((?:[^()"]|"(?:[^"\\]|\\.)*")*\)|(?:[^\s()"\\]|\\.)+'
_CLAUSE = re.compile(rf"(?P<sign>[+-]?)(?P<field>[A-Za-z_][\w.]*):(?P<value>{_VALUE})")
_LIST_ITEM = re.compile(r'"(?:[^"\\]|\\.)*"|(?:[^\s()"\\]|\\.)+')


def _unescape(value: str) -> str:
    if value.startswith('"') and value.endswith('"') and len(value) >= 2:
        value = value[1:-1]
    return re.sub(r"\\(.)", r"\1", value)


def _values(raw: str, where: str) -> list[str]:
    if raw.startswith("("):
        inner = raw[1:-1]
        tokens = _LIST_ITEM.findall(inner)
        values = [_unescape(t) for t in tokens if t != "OR"]
        ops = tokens[1::2]
        if not values or any(op != "OR" for op in ops) or len(tokens) != 2 * len(values) - 1:
            raise bad_query(f"{where}: a list of values must read (a OR b OR …), not {raw!r}")
        return values
    return [_unescape(raw)]


@dataclass
class _Query:
    words: list[str]
    filters: dict[str, list[str]]
    nothing: bool = False  # a no-op field with a value that matches nothing (e.g. state:deleted)


def _add_clause(parsed: _Query, field: str, raw: str, where: str) -> None:
    target = FQ_FIELDS.get(field)
    if target is None:
        known = ", ".join(sorted({*FQ_FIELDS, *TEXT_FIELDS}))
        raise bad_query(f"{where}: unknown field {field!r}; the fields are {known}")
    values = _values(raw, where)
    if target.startswith("noop:"):
        if any(v.lower() != target.removeprefix("noop:") for v in values if v != "*"):
            parsed.nothing = True
        return
    if target == "axis":
        unknown = [v for v in values if v not in AXIS_NAMES and v.lower() not in AXIS_NAMES]
        if unknown:
            names = ", ".join(g for g, _ in GROUPS.values())
            raise bad_query(f"{where}: unknown group {unknown[0]!r}; the groups are {names} (基础, 主题, 部门)")
        target = "classification"
    parsed.filters.setdefault(target, []).extend(values)


def parse_fq(fq: str, parsed: _Query, where: str = "fq") -> None:
    """Add the clauses of a Solr-style filter query to ``parsed``; a Search Query Error says what is wrong."""
    pos, text = 0, fq.strip()
    while pos < len(text):
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            break
        rest = text[pos:]
        if rest.startswith("*:*"):
            pos += 3
            continue
        op = re.match(r"(AND|&&)(?=\s|$)", rest)
        if op:
            pos += op.end()
            continue
        if re.match(r"(OR|NOT|\|\|)(?=\s|$)|!", rest):
            raise bad_query(f"{where}: only AND between clauses is supported; for alternatives write field:(a OR b)")
        match = _CLAUSE.match(rest)
        if match is None or (match.end() < len(rest) and not rest[match.end()].isspace()):
            raise bad_query(f"{where}: cannot read {rest[:60]!r}: write field:value clauses, e.g. res_format:csv")
        if match.group("sign") == "-":
            raise bad_query(f"{where}: negative clauses (-{match.group('field')}:…) are not supported")
        _add_clause(parsed, match.group("field"), match.group("value"), where)
        pos += match.end()


def parse_q(q: str) -> _Query:
    """Keywords and ``field:value`` filters of CKAN's ``q``."""
    parsed = _Query(words=[], filters={})
    text = q.strip()
    if text in ("", "*:*", "*"):
        return parsed
    for token in text.split():
        match = _CLAUSE.fullmatch(token)
        if match and match.group("field") in FQ_FIELDS and match.group("sign") != "-":
            _add_clause(parsed, match.group("field"), match.group("value"), "q")
        elif match and match.group("field") in TEXT_FIELDS:
            parsed.words.append(_unescape(match.group("value")))
        else:
            parsed.words.append(token)
    return parsed


SORT_FIELDS = {
    "score": "score",
    "rank": "score",
    "name": "id",
    "id": "id",
    "title": "name",
    "title_string": "name",
    "metadata_modified": "modified",
    "metadata_created": "created",
}
DEFAULT_SORT = "score desc, metadata_modified desc"


def parse_sort(value: str) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for part in value.split(","):
        words = part.split()
        if not words:
            continue
        if (
            len(words) > 2
            or words[0] not in SORT_FIELDS
            or (len(words) == 2 and words[1].lower() not in ("asc", "desc"))
        ):
            raise invalid(
                "sort",
                f"Cannot sort by {part.strip()!r}: write 'field asc|desc, …' with fields "
                + ", ".join(sorted(SORT_FIELDS)),
            )
        found.append((SORT_FIELDS[words[0]], words[1].lower() if len(words) == 2 else "asc"))
    return found or parse_sort(DEFAULT_SORT)


FACET_FIELDS = {
    "organization": "department",
    "owner_org": "department",
    "res_format": "format_type",
    "tags": "tags",
    "groups": "axis",
    "share_type": "share_type",
    "update_cycle": "update_cycle",
    "format_category": "format_category",
    "open_to_public": "open",
}


def package_search(ctx: Context, params: Mapping[str, Any]) -> dict[str, Any]:
    """Search the datasets (packages): keywords, filters, sort, paging and facets.

    :param q: keywords (substrings of names, abstracts and data items); ``*:*`` for all
    :param fq: filters, e.g. ``organization:11310000mb0001019x res_format:xlsx tags:人口``
    :param sort: e.g. ``score desc, metadata_modified desc`` (default), ``name asc``
    :param rows: how many results (0 … 1000, default 10)
    :param start: the offset of the first result (default 0)
    :param facet.field: fields to count, e.g. ``["organization", "res_format", "tags", "groups"]``
    :param facet.limit: most values per facet (default 50, -1 for all)
    :param fl: comma-separated fields of each result to return (default: the whole package)
    """
    unknown = sorted(k for k in params if k not in SEARCH_PARAMETERS and not k.startswith("ext_"))
    if unknown:
        raise bad_query(
            f"Invalid search parameters: {unknown}; the parameters are {', '.join(sorted(SEARCH_PARAMETERS))}"
        )
    rows = _int(params, "rows", 10, 0, MAX_ROWS)
    start = _int(params, "start", 0, 0, MAX_START)
    assert rows is not None and start is not None
    sort_text = _str(params, "sort", DEFAULT_SORT, limit=200) or DEFAULT_SORT
    sort = parse_sort(sort_text)
    parsed = parse_q(_str(params, "q", "", limit=1000))
    fqs = [_str(params, "fq", "", limit=2000), *_strings(params, "fq_list")]
    for fq in fqs:
        parse_fq(fq, parsed)
    facet_fields = _strings(params, "facet.field") if _bool(params, "facet", True) else []
    facet_limit = _int(params, "facet.limit", 50, -1, 10_000)
    mincount = _int(params, "facet.mincount", 1, 0, 1_000_000) or 0
    fields = [f.strip() for f in _str(params, "fl", "", limit=500).split(",") if f.strip()]
    f = parsed.filters
    opens = f.get("open", [])
    open_values = {v.strip().lower() for v in opens}
    if open_values - {"true", "false", "1", "0"}:
        raise bad_query(f"open_to_public: use true or false, not {sorted(open_values)[0]!r}")
    is_open: bool | None = None
    if open_values == {"true"} or open_values == {"1"}:
        is_open = True
    elif open_values == {"false"} or open_values == {"0"}:
        is_open = False
    elif len(open_values) > 1:
        is_open = None  # true OR false: everything
    filters = Filters(
        department=f.get("department", []),
        classification=f.get("classification", []),
        share_type=f.get("share_type", []),
        update_cycle=f.get("update_cycle", []),
        format=f.get("format", []),
        open=is_open,
    )
    wanted = {name: FACET_FIELDS[name] for name in facet_fields if name in FACET_FIELDS}
    try:
        found = search(
            ctx.session,
            " ".join(parsed.words),
            filters,
            viewer=ctx.viewer,
            start=start,
            rows=0 if parsed.nothing else rows,
            sort=sort,
            facets=sorted(set(wanted.values())),
            facet_limit=10_000 if facet_limit is None or facet_limit < 0 else facet_limit,
        )
    except SearchError as exc:
        message = exc.message + (f" ({exc.hint})" if exc.hint else "")
        if exc.field in ("q", "department", "classification", "share_type", "update_cycle", "format", "open"):
            raise bad_query(message) from None
        raise invalid(exc.field, message) from None
    count = 0 if parsed.nothing else found.total
    results = [] if parsed.nothing else _packages(ctx, _load(ctx, [h.id for h in found.hits]))
    if fields:
        results = [{k: r.get(k) for k in fields} for r in results]
    facets: dict[str, dict[str, int]] = {}
    search_facets: dict[str, dict[str, Any]] = {}
    depts: dict[str, str] | None = None
    for name in facet_fields:
        items: list[tuple[str, str, int]] = []
        ours = wanted.get(name)
        for value, n in found.facets.get(ours, []) if ours and not parsed.nothing else []:
            if n < mincount:
                continue
            key, label = value, value
            if ours == "department":
                if depts is None:
                    depts = {str(u): str(t) for u, t in ctx.session.execute(select(Department.uscc, Department.name))}
                key = organization_name(value) if name == "organization" else value
                label = depts.get(value, value)
            elif ours == "axis" and value in {a.value for a in ClassificationAxis}:
                key, label = GROUPS[ClassificationAxis(value)]
            items.append((key, label, n))
        facets[name] = {k: n for k, _, n in items}
        search_facets[name] = {
            "title": name,
            "items": [{"name": k, "display_name": d, "count": n} for k, d, n in items],
        }
    return {"count": count, "results": results, "facets": facets, "search_facets": search_facets, "sort": sort_text}


def organization_list(ctx: Context, params: Mapping[str, Any]) -> list[Any]:
    """Return the organizations (the providing departments): names, or dicts with ``all_fields``.

    :param all_fields: return organization dicts instead of names (default false)
    :param sort: ``name asc`` (default), ``title asc``, ``package_count desc`` …
    :param limit: / :param offset: paging
    :param organizations: only these (names)
    :param q: only those whose name or title contains this
    """
    all_fields = _bool(params, "all_fields", False)
    limit = _int(params, "limit", None, 0, 1000)
    offset = _int(params, "offset", 0, 0, MAX_START) or 0
    only = {o.lower() for o in _strings(params, "organizations")}
    q = _str(params, "q", "", limit=200).strip().lower()
    sort_text = _str(params, "sort", "name asc", limit=100) or "name asc"
    words = sort_text.split()
    if (
        not words
        or len(words) > 2
        or words[0] not in ("name", "title", "package_count")
        or (len(words) == 2 and words[1].lower() not in ("asc", "desc"))
    ):
        raise invalid(
            "sort", f"Cannot sort organizations by {sort_text!r}: use name, title or package_count, asc or desc"
        )
    counts = _counts(ctx)
    depts = list(ctx.session.scalars(select(Department)))
    if only:
        depts = [d for d in depts if organization_name(d.uscc) in only or d.uscc.lower() in only]
    if q:
        depts = [d for d in depts if q in organization_name(d.uscc) or q in d.name.lower()]
    descending = len(words) == 2 and words[1].lower() == "desc"
    if words[0] == "package_count":  # ties in name order, whichever way the counts go
        sign = -1 if descending else 1
        depts.sort(key=lambda d: (sign * counts.get(d.uscc, 0), organization_name(d.uscc)))
    elif words[0] == "title":
        depts.sort(key=lambda d: (d.name, d.uscc), reverse=descending)
    else:
        depts.sort(key=lambda d: organization_name(d.uscc), reverse=descending)
    depts = depts[offset:] if limit is None else depts[offset : offset + limit]
    if not all_fields:
        return [organization_name(d.uscc) for d in depts]
    include_counts = _bool(params, "include_dataset_count", True)
    return [organization_dict(ctx, d, counts.get(d.uscc, 0) if include_counts else None) for d in depts]


def organization_show(ctx: Context, params: Mapping[str, Any]) -> dict[str, Any]:
    """Return an organization (a providing department) with its dataset count.

    :param id: its id (USCC), name (the USCC in lower case) or title (the department's name)
    :param include_datasets: include its datasets (up to 1000; default false)
    """
    dept = _find_department(ctx, _id(params, "id"))
    counts = _counts(ctx)
    found = organization_dict(ctx, dept, counts.get(dept.uscc, 0))
    if _bool(params, "include_datasets", False):
        ids = list(
            ctx.session.scalars(
                select(Entry.id)
                .where(Entry.department_uscc == dept.uscc, visibility_filter(ctx.viewer))
                .order_by(Entry.id)
                .limit(MAX_ROWS)
            )
        )
        found["packages"] = _packages(ctx, _load(ctx, ids))
    found["users"] = []
    return found


def resource_show(ctx: Context, params: Mapping[str, Any]) -> dict[str, Any]:
    """Return a resource: one published version (or the delivery method) of a dataset.

    :param id: the resource id, ``<dataset name>.v<version>`` or ``<dataset name>.<method>``
    """
    rid = _id(params, "id")
    name, dot, _ = rid.rpartition(".")
    if not dot:
        raise not_found(f"no resource {rid!r}")
    try:
        entry = _find_entry(ctx, name)
    except CkanError:
        raise not_found(f"no resource {rid!r}") from None
    for resource in _packages(ctx, [entry])[0]["resources"]:
        if resource["id"] == rid:
            return dict(resource)
    raise not_found(f"no resource {rid!r}")


def status_show(ctx: Context, params: Mapping[str, Any]) -> dict[str, Any]:
    """Return the site's status: title, URL, the CKAN API version it follows."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        ours = version("govdata")
    except PackageNotFoundError:
        ours = "unknown"
    return {
        "site_title": SITE_TITLE,
        "site_description": "城市共享交换平台的政务数据资源目录（只读 CKAN 接口）",
        "site_url": ctx.base_url,
        "ckan_version": CKAN_VERSION,
        "error_emails_to": None,
        "locale_default": "zh_Hans_CN",
        "extensions": [],
        "govdata_version": ours,
    }


def help_show(ctx: Context, params: Mapping[str, Any]) -> str:
    """Return the help text of an action.

    :param name: the action's name
    """
    name = _id(params, "name")
    action = ACTIONS.get(name)
    if action is None:
        raise not_found(f"no action {name!r}")
    return (action.__doc__ or "").strip()


ACTIONS: dict[str, Callable[[Context, Mapping[str, Any]], Any]] = {
    "package_list": package_list,
    "package_show": package_show,
    "package_search": package_search,
    "organization_list": organization_list,
    "organization_show": organization_show,
    "resource_show": resource_show,
    "status_show": status_show,
    "help_show": help_show,
}


def call(
    store: CatalogStore, action: str, params: Mapping[str, Any], *, base_url: str, viewer: Viewer = ANONYMOUS
) -> tuple[int, Any]:
    """Answer one action: ``(HTTP status, body)`` with CKAN's envelope (or its bare 400 string)."""
    base = base_url.rstrip("/")
    shown = action if len(action) <= 100 else action[:100] + "…"
    help_url = f"{base}/api/3/action/help_show?name={quote(shown, safe='')}"
    function = ACTIONS.get(action)
    if function is None:
        if action in WRITE_ACTIONS:
            error = CkanError(
                403,
                "Authorization Error",
                f"Access denied: {action} is not allowed: this CKAN API is read-only "
                "(change the catalog with `govdata catalog …`)",
            )
            return error.status, {"help": help_url, "success": False, "error": error.error}
        return 400, f"Bad request - Action name not known: {shown}"
    try:
        with store.session() as session:
            result = function(Context(session, base, viewer), params)
    except CkanError as exc:
        return exc.status, {"help": help_url, "success": False, "error": exc.error}
    except GovdataError as exc:
        error = CkanError(409, "Validation Error", exc.message + (f" ({exc.hint})" if exc.hint else ""))
        return error.status, {"help": help_url, "success": False, "error": error.error}
    return 200, {"help": help_url, "success": True, "result": result}
