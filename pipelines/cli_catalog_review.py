"""``govdata catalog submit|review|withdraw|revise|users``: the catalog lifecycle from the command line.

Each command acts as a catalog user (``--as USER`` or ``GOVDATA_USER``); what that user may do
is :mod:`catalog.lifecycle`'s table. Every step is recorded (who, role, when, opinion) and
written to the audit log.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from pipelines.cli_catalog import catalog_app
from pipelines.cli_common import ActorOpt, HomeOpt, out
from pipelines.cli_common import user_errors as _user_errors
from pipelines.errors import SpecError

if TYPE_CHECKING:
    from catalog.store import CatalogStore
    from pipelines.spec import DatasetSpec
    from pipelines.workspace import Workspace

users_app = typer.Typer(help="The people who act on the catalog: staff, department admins, city admins, auditors.")
catalog_app.add_typer(users_app, name="users", no_args_is_help=True)

OpinionOpt = Annotated[
    str | None, typer.Option("--opinion", help="The opinion (审核意见); required to return, reject and withdraw.")
]


def _store(home: Path | None) -> CatalogStore:
    from catalog.store import CatalogStore
    from pipelines.workspace import Workspace

    return CatalogStore(Workspace.from_env(home).catalog_url)


def _actor(actor: str | None) -> str:
    if actor is None or not actor.strip():
        raise SpecError(
            "who is acting? this command needs a catalog user",
            hint="give --as USER (or set GOVDATA_USER); `govdata catalog users list` shows the users",
        )
    return actor.strip()


def _act(home: Path | None, dataset: str, action: str, actor: str | None, opinion: str | None) -> None:
    from catalog import lifecycle
    from catalog.access import Role, Status

    with _user_errors():
        user = _actor(actor)
        with _store(home).session() as s:
            row = lifecycle.transition(s, dataset, action, actor=user, opinion=opinion)
            done = (row.entry_id, row.action, row.from_status, row.to_status, row.actor, row.role)
    entry, name, source, target, who, role = done
    out.print(
        f"[green]✓[/] {entry}: {Status(source).label} {source} → [bold]{Status(target).label} {target}[/]"
        f"  ({name} by {who}, {Role(role).label})",
        highlight=False,
    )


@catalog_app.command("submit")
def catalog_submit(
    dataset: Annotated[str, typer.Argument(help="Dataset id of the catalog entry.")],
    publication: Annotated[
        bool,
        typer.Option(
            "--publication", help="Submit for publication (a registered or withdrawn entry; department admin)."
        ),
    ] = False,
    opinion: OpinionOpt = None,
    actor: ActorOpt = None,
    home: HomeOpt = None,
) -> None:
    """Submit an entry for registration review (draft or returned), or with --publication for publication review."""
    _act(home, dataset, "submit_publication" if publication else "submit", actor, opinion)


@catalog_app.command("review")
def catalog_review(
    dataset: Annotated[str, typer.Argument(help="Dataset id of the catalog entry.")],
    approve: Annotated[bool, typer.Option("--approve", help="Approve what is pending.")] = False,
    return_: Annotated[bool, typer.Option("--return", help="Return it to the department for changes.")] = False,
    reject: Annotated[bool, typer.Option("--reject", help="Reject it.")] = False,
    schema_change: Annotated[
        bool, typer.Option("--schema-change", help="Decide the entry's breaking schema change instead.")
    ] = False,
    opinion: OpinionOpt = None,
    actor: ActorOpt = None,
    home: HomeOpt = None,
) -> None:
    """Review what is pending (registration or publication), or with --schema-change a breaking schema change."""
    chosen = [name for name, on in (("--approve", approve), ("--return", return_), ("--reject", reject)) if on]
    with _user_errors():
        if len(chosen) != 1:
            raise SpecError(
                "review needs exactly one decision" + (f", not {' and '.join(chosen)}" if chosen else ""),
                hint="give one of --approve, --return or --reject, with --opinion TEXT",
            )
        if schema_change and return_:
            raise SpecError(
                "a schema change is approved or rejected, not returned",
                hint="use --approve or --reject with --schema-change",
            )
    if not schema_change:
        _act(home, dataset, "approve" if approve else "return" if return_ else "reject", actor, opinion)
        return
    from catalog import schema

    with _user_errors():
        user = _actor(actor)
        with _store(home).session() as s:
            row = schema.decide(s, dataset, approve=approve, actor=user, opinion=opinion)
            changes = [c["message"] for c in row.changes if c.get("breaking")]
            status, decided_by = row.status, row.decided_by
    out.print(f"[green]✓[/] {dataset}: schema change {status} by {decided_by}", highlight=False)
    for message in changes:
        out.print(f"  · {message}", highlight=False)
    if status == "approved":
        out.print("  run the dataset again (same date) to publish the new version", highlight=False)


@catalog_app.command("withdraw")
def catalog_withdraw(
    dataset: Annotated[str, typer.Argument(help="Dataset id of the catalog entry.")],
    opinion: OpinionOpt = None,
    actor: ActorOpt = None,
    home: HomeOpt = None,
) -> None:
    """Withdraw a published entry (下架): department admin of its department or city admin; an opinion is required."""
    _act(home, dataset, "withdraw", actor, opinion)


@catalog_app.command("revise")
def catalog_revise(
    dataset: Annotated[str, typer.Argument(help="Dataset id of the catalog entry.")],
    opinion: OpinionOpt = None,
    actor: ActorOpt = None,
    home: HomeOpt = None,
) -> None:
    """Take a rejected entry back to draft to revise it (its department)."""
    _act(home, dataset, "revise", actor, opinion)


# --- users -------------------------------------------------------------------------------------


@users_app.command("add")
def users_add(
    user_id: Annotated[str, typer.Argument(metavar="ID", help="Login name: letters, digits, '_', '.', '-'.")],
    name: Annotated[str, typer.Option("--name", help="The person's name.")],
    role: Annotated[str, typer.Option("--role", help="staff, dept_admin, city_admin or auditor.")],
    department: Annotated[
        str | None,
        typer.Option("--department", help="USCC (or exact name) of the department; required for staff and dept_admin."),
    ] = None,
    home: HomeOpt = None,
) -> None:
    """Add a catalog user (the local operator manages users)."""
    from catalog import lifecycle
    from catalog.access import Role

    with _user_errors(), _store(home).session() as s:
        user = lifecycle.add_user(s, user_id, name=name, role=role, department=department)
        shown = (user.id, user.name, Role(user.role).label, user.role, user.department_uscc)
    out.print(
        f"[green]✓[/] user {shown[0]} ({shown[1]}): {shown[2]} {shown[3]}"
        + (f", department {shown[4]}" if shown[4] else ""),
        highlight=False,
    )


@users_app.command("list")
def users_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
    home: HomeOpt = None,
) -> None:
    """List the catalog users with their role and department."""
    from catalog import lifecycle
    from catalog.access import Role

    with _user_errors(), _store(home).session() as s:
        rows: list[dict[str, Any]] = [
            {
                "id": u.id,
                "name": u.name,
                "role": u.role,
                "department": u.department_uscc,
                "department_name": u.department.name if u.department else None,
                "active": u.active,
            }
            for u in lifecycle.list_users(s)
        ]
    if as_json:
        out.print_json(json.dumps(rows, ensure_ascii=False))
        return
    if not rows:
        out.print("no users yet: `govdata catalog users add ID --name NAME --role ROLE [--department USCC]`")
        return
    table = Table(title="catalog users")
    for col in ("id", "name", "role", "department", "active"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            r["id"],
            r["name"],
            f"{Role(r['role']).label} {r['role']}",
            f"{r['department_name']} ({r['department']})" if r["department"] else "-",
            "yes" if r["active"] else "no",
        )
    out.print(table)


# --- the demo's users ----------------------------------------------------------------------------


def seed_demo_users(workspace: Workspace, specs: list[DatasetSpec], folder: Path) -> list[dict[str, Any]]:
    """A staff member and a department admin per department of ``specs``, a city admin and an auditor.

    Ids follow the dataset folder (``hrss_staff``, ``hrss_admin``); users that exist already are
    kept as they are. Returns every seeded user (id, name, role, department).
    """
    from catalog import lifecycle
    from catalog.access import Role
    from catalog.models import Department
    from catalog.store import CatalogStore

    base = folder.resolve()
    keys: dict[str, tuple[str, DatasetSpec]] = {}  # USCC → (id prefix, a spec of the department)
    for spec in specs:
        dept = spec.department.uscc
        if dept in keys:
            continue
        parent = spec.path.parent.resolve() if spec.path else None
        key: str = parent.name if parent is not None and parent != base else spec.id
        if key in {k for k, _ in keys.values()}:
            key = f"{key}_{dept[-4:].lower()}"
        keys[dept] = (key, spec)
    wanted: list[tuple[str, str, Role, str | None]] = []
    for uscc, (key, spec) in keys.items():
        wanted.append((f"{key}_staff", f"{spec.department.name}工作人员", Role.STAFF, uscc))
        wanted.append((f"{key}_admin", f"{spec.department.name}管理员", Role.DEPT_ADMIN, uscc))
    wanted.append(("city_admin", "市大数据中心管理员", Role.CITY_ADMIN, None))
    wanted.append(("auditor", "审计员", Role.AUDITOR, None))
    seeded = []
    with CatalogStore(workspace.catalog_url).session() as s:
        for _, spec in keys.values():  # a department whose runs all held before the catalog step
            if s.get(Department, spec.department.uscc) is None:
                s.add(
                    Department(
                        uscc=spec.department.uscc,
                        name=spec.department.name,
                        region=spec.department.region,
                        level=spec.department.level,
                    )
                )
        s.flush()
        for user_id, name, role, dept_code in wanted:
            user, _ = lifecycle.ensure_user(s, user_id, name=name, role=role, department=dept_code)
            seeded.append({"id": user.id, "name": user.name, "role": user.role, "department": user.department_uscc})
    return seeded
