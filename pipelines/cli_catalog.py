"""``govdata catalog …``: the government data resource catalog (政务数据资源目录) from the command line."""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated, Any

import typer
from rich.table import Table

from pipelines.cli_common import ActorOpt, HomeOpt, out
from pipelines.cli_common import user_errors as _user_errors
from pipelines.errors import GovdataError

catalog_app = typer.Typer(help="The government data resource catalog (政务数据资源目录).", no_args_is_help=True)


@catalog_app.command("list")
def catalog_list(
    status: Annotated[
        str | None, typer.Option("--status", help="Only entries in this status (e.g. published, draft).")
    ] = None,
    department: Annotated[str | None, typer.Option("--department", help="Only this department (USCC or name).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
    actor: ActorOpt = None,
    home: HomeOpt = None,
) -> None:
    """List the catalog entries with their status and latest version (with --as: what that user may see)."""
    from sqlalchemy import select
    from sqlalchemy.orm import selectinload

    from catalog.access import Status, viewer_for, visibility_filter
    from catalog.models import Department, Entry
    from catalog.store import CatalogStore
    from pipelines.workspace import Workspace

    with _user_errors():
        if status is not None and status not in {s.value for s in Status}:
            raise GovdataError(
                f"unknown status {status!r}", hint="use one of: " + ", ".join(f"{s.value} ({s.label})" for s in Status)
            )
        store = CatalogStore(Workspace.from_env(home).catalog_url)
        with store.session() as session:
            query = (
                select(Entry)
                .join(Department)
                .where(visibility_filter(viewer_for(session, actor)))
                .options(selectinload(Entry.department), selectinload(Entry.versions))
                .order_by(Entry.id)
            )
            if status is not None:
                query = query.where(Entry.status == status)
            if department is not None:
                wanted = department.strip()
                query = query.where((Department.uscc == wanted.upper()) | (Department.name == wanted))
            entries = list(session.scalars(query))
    if as_json:
        out.print_json(
            json.dumps(
                [
                    {
                        "id": e.id,
                        "resource_code": e.resource_code,
                        "name": e.name,
                        "department": {"uscc": e.department_uscc, "name": e.department.name},
                        "share_type": e.share_type,
                        "update_cycle": e.update_cycle,
                        "status": e.status,
                        "latest_version": e.versions[-1].number if e.versions else None,
                        "rows": e.versions[-1].row_count if e.versions else None,
                    }
                    for e in entries
                ],
                ensure_ascii=False,
            )
        )
        return
    table = Table(title="政务数据资源目录")
    for col in ("id", "resource code", "name", "provider", "share type", "update cycle", "status", "version", "rows"):
        table.add_column(col, no_wrap=col in ("id", "resource code", "version", "rows"))
    for e in entries:
        latest = e.versions[-1] if e.versions else None
        table.add_row(
            e.id,
            e.resource_code,
            e.name,
            e.department.name,
            e.share_type,
            e.update_cycle,
            Status(e.status).label,
            f"v{latest.number}" if latest else "-",
            str(latest.row_count) if latest else "-",
        )
    out.print(table)


@catalog_app.command("show")
def catalog_show(
    dataset: Annotated[str, typer.Argument(help="Dataset id.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
    actor: ActorOpt = None,
    home: HomeOpt = None,
) -> None:
    """Show one entry: the 13 core elements, its data items, versions (with schema changes) and lifecycle."""
    from sqlalchemy import select

    from catalog import lifecycle
    from catalog import schema as schema_changes
    from catalog.access import Role, Status, viewer_for, visibility_filter
    from catalog.models import Entry
    from catalog.store import CatalogStore
    from pipelines.workspace import Workspace

    with _user_errors():
        store = CatalogStore(Workspace.from_env(home).catalog_url)
        with store.session() as s:
            # An entry the user may not see is, to them, no entry at all (its id is not confirmed).
            visible = set(s.scalars(select(Entry.id).where(visibility_filter(viewer_for(s, actor)))))
        e = store.entry(dataset) if dataset in visible else None
        if e is None:
            import difflib

            known = sorted(visible)
            near = difflib.get_close_matches(dataset, known, n=1)
            raise GovdataError(
                f"no catalog entry {dataset!r}",
                hint=(f"did you mean {near[0]!r}? " if near else "") + "`govdata catalog list` shows the entries",
            )
        with store.session() as s:
            transitions: list[dict[str, Any]] = [
                {
                    "at": (t.at if t.at.tzinfo is None else t.at.astimezone(dt.UTC)).isoformat(),
                    "action": t.action,
                    "from": t.from_status,
                    "to": t.to_status,
                    "actor": t.actor,
                    "role": t.role,
                    "opinion": t.opinion,
                }
                for t in lifecycle.history(s, e.id)
            ]
            waiting = schema_changes.pending(s, e.id)
            schema_pending: dict[str, Any] | None = (
                None
                if waiting is None
                else {"status": waiting.status, "from_version": waiting.from_version, "changes": waiting.changes}
            )
    status_label = f"{Status(e.status).label} {e.status}" if e.status in set(Status) else e.status
    elements = {
        "1 信息资源分类": f"{e.classification_axis}/" + "/".join(e.classification_path),
        "2 信息资源名称": e.name,
        "3 信息资源代码": e.resource_code,
        "4 信息资源提供方": e.department.name,
        "5 提供方代码": e.department_uscc,
        "6 信息资源摘要": e.abstract,
        "7 信息资源格式": f"{e.format_category} ({e.format_type})",
        "8 信息项": [
            {
                "name": i.name,
                "title": i.title,
                "type": i.type_code,
                "length": i.length,
                "primary_key": i.primary_key,
                "nullable": i.nullable,
                "sensitive": i.sensitive,
                "sensitive_level": i.sensitive_level,
                "share_type": i.share_type,
                "masking_rule": i.masking_rule,
                "code_set": i.code_set,
            }
            for i in e.items
        ],
        "9 共享属性": {"type": e.share_type, "condition": e.share_condition, "method": e.share_method},
        "10 开放属性": {"open": e.open_to_public, "condition": e.open_condition},
        "11 更新周期": e.update_cycle,
        "12 发布日期": e.publish_date.isoformat() if e.publish_date else None,
        "13 关联资源代码": e.related_resources,
    }
    versions: list[dict[str, Any]] = [
        {
            "version": v.number,
            "run_id": v.run_id,
            "rows": v.row_count,
            "sha256": v.content_sha256,
            "quality_score": v.quality.get("score"),
            "published_at": v.published_at.isoformat(),
            "location": v.location,
            "schema_change": v.schema_change,
            "lineage": {"source_system": v.source_system, "upstream": v.upstream, "run_id": v.run_id},
        }
        for v in e.versions
    ]
    if as_json:
        label = Status(e.status).label if e.status in set(Status) else None
        doc: dict[str, Any] = {"id": e.id, "status": e.status, "status_label": label}
        doc |= {"elements": elements, "versions": versions, "transitions": transitions}
        doc |= {"schema_change_pending": schema_pending}
        out.print_json(json.dumps(doc, ensure_ascii=False))
        return
    table = Table(title=f"{e.name} ({e.id}) · {status_label}", show_header=False)
    table.add_column("element", style="bold")
    table.add_column("value")
    for key, value in elements.items():
        if key.startswith("8 "):
            shown = "\n".join(
                f"{i.title} {i.name} {i.type_code}{'' if i.length is None else f'({i.length})'}"
                + (" PK" if i.primary_key else "")
                + (" 敏感" if i.sensitive else "")
                for i in e.items
            )
        elif isinstance(value, dict | list):
            shown = json.dumps(value, ensure_ascii=False)
        else:
            shown = "" if value is None else str(value)
        table.add_row(key, shown)
    out.print(table)
    vt = Table(title="versions")
    for col in ("version", "run", "rows", "quality", "sha256", "published at", "schema change"):
        vt.add_column(col)
    for v in versions:
        score = v["quality_score"]
        change = v["schema_change"]
        approval = (change or {}).get("approval") or {}
        vt.add_row(
            f"v{v['version']}",
            str(v["run_id"]),
            str(v["rows"]),
            "-" if score is None else f"{score:.3f}",
            str(v["sha256"])[:12],
            str(v["published_at"]),
            "-"
            if not change
            else f"{change['kind']} vs v{change['from_version']}: "
            + "; ".join(c["message"] for c in change["changes"])
            + (f" (approved by {approval['by']}: {approval['opinion']})" if approval.get("by") else ""),
        )
    out.print(vt)
    if schema_pending is not None:
        out.print(
            f"[yellow]schema change vs v{schema_pending['from_version']} {schema_pending['status']}:[/] "
            + "; ".join(c["message"] for c in schema_pending["changes"] if c.get("breaking")),
            highlight=False,
        )
    tt = Table(title="lifecycle (目录生命周期)")
    for col in ("at (UTC)", "action", "from → to", "by", "opinion"):
        tt.add_column(col, overflow="fold")
    for t in transitions:
        tt.add_row(
            str(t["at"])[:16].replace("T", " "),
            str(t["action"]),
            f"{Status(t['from']).label} → {Status(t['to']).label}",
            f"{t['actor']} ({Role(t['role']).label if t['role'] in set(Role) else t['role']})",
            t["opinion"] or "",
        )
    out.print(tt if transitions else "no lifecycle steps recorded")
