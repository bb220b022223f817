"""The exchange store: versioned Parquet plus a manifest per resource, committed atomically.

Layout: ``<root>/<resource>/v<NNNNNN>/{data.parquet, manifest.json}``, plus the change index
against the version before (``changes.old.parquet``, ``changes.new.parquet``; :mod:`exchange.changes`). A version is written in a
hidden ``.incoming-*`` folder and renamed into place in one step, so a reader sees a whole version
or none. The catalog row is written after the rename (the commit point); a version folder
without a catalog row is an interrupted publish and is re-used or cleared by the next one.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from exchange import changes
from pipelines.errors import TerminalError
from pipelines.files import sha256_file

if TYPE_CHECKING:
    from exchange.objectstore import ObjectExchangeStore
    from pipelines.workspace import Workspace

__all__ = [
    "DATA_FILE",
    "MANIFEST_FILE",
    "LocalExchangeStore",
    "StoredVersion",
    "open_store",
    "sha256_file",
    "version_folder",
]

DATA_FILE = "data.parquet"
MANIFEST_FILE = "manifest.json"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class StoredVersion:
    """A version folder in the store (for an object store: its local cached copy)."""

    resource: str
    number: int
    path: Path
    manifest: dict[str, Any]
    #: Where the version lives, as the catalog records it: the folder, or the object store's URL.
    location: str = ""

    @property
    def where(self) -> str:
        return self.location or str(self.path)

    @property
    def data_path(self) -> Path:
        return self.path / DATA_FILE


class LocalExchangeStore:
    """The exchange store on a local (or mounted) file system."""

    kind = "local"

    def __init__(self, root: Path) -> None:
        self.root = root

    def describe(self) -> str:
        return f"the local exchange store {self.root}"

    def version_dir(self, resource: str, number: int) -> Path:
        return self.root / resource / f"v{number:06d}"

    def read(self, resource: str, number: int) -> StoredVersion | None:
        folder = self.version_dir(resource, number)
        manifest = folder / MANIFEST_FILE
        if not manifest.is_file():
            return None
        return StoredVersion(resource, number, folder, json.loads(manifest.read_text(encoding="utf-8")))

    def versions(self, resource: str) -> list[int]:
        base = self.root / resource
        if not base.is_dir():
            return []
        return sorted(int(p.name[1:]) for p in base.iterdir() if p.name.startswith("v") and p.name[1:].isdigit())

    def write(self, resource: str, number: int, data: Path, manifest: dict[str, Any]) -> StoredVersion:
        """Move ``data`` (a finished Parquet file) into version ``number`` with its manifest, atomically.

        If the version folder already exists (an interrupted earlier publish), it is kept when it
        holds the same content and cleared otherwise.
        """
        target = self.version_dir(resource, number)
        existing = self.read(resource, number)
        if existing is not None and existing.manifest.get("content_sha256") == manifest.get("content_sha256"):
            data.unlink(missing_ok=True)
            return existing
        if target.exists():
            shutil.rmtree(target)
        incoming = self.root / resource / f".incoming-{uuid.uuid4().hex}"
        incoming.mkdir(parents=True)
        shutil.move(str(data), incoming / DATA_FILE)
        (incoming / MANIFEST_FILE).write_text(json.dumps(manifest, ensure_ascii=False, indent=2), encoding="utf-8")
        files = [incoming / DATA_FILE, incoming / MANIFEST_FILE]
        previous = self.read(resource, number - 1) if number > 1 else None
        key = manifest.get("primary_key")
        # The rows that differ from the version before, for incremental deliveries (exchange.changes).
        if (
            previous is not None
            and isinstance(key, list)
            and key
            and changes.build_index(previous.data_path, incoming / DATA_FILE, [str(k) for k in key], incoming)
        ):
            files += [incoming / changes.OLD_FILE, incoming / changes.NEW_FILE]
        for f in files:
            with f.open("rb") as fh:
                os.fsync(fh.fileno())
        _fsync_dir(incoming)
        incoming.rename(target)
        _fsync_dir(target.parent)
        return StoredVersion(resource, number, target, manifest)

    def clear_incoming(self, resource: str) -> None:
        """Remove leftovers of publishes that died before their rename."""
        base = self.root / resource
        if base.is_dir():
            for p in base.glob(".incoming-*"):
                shutil.rmtree(p, ignore_errors=True)

    def remove_uncommitted(self, resource: str, committed: set[int]) -> list[int]:
        """Delete version folders that no catalog row points at (interrupted publishes)."""
        removed = []
        for number in self.versions(resource):
            if number not in committed:
                shutil.rmtree(self.version_dir(resource, number))
                removed.append(number)
        return removed


#: Object stores opened in this process, by their canonical URL and cache: versions' locations resolve through them.
_OPEN: dict[tuple[str, str], ObjectExchangeStore] = {}


def open_store(workspace: Workspace) -> LocalExchangeStore | ObjectExchangeStore:
    """The workspace's exchange store: the object store of ``GOVDATA_STORE_URL``, else the local folder.

    With an object store, the workspace's ``exchange/`` folder is its read-through cache and
    holds the commit locks.
    """
    if not workspace.store_url:
        return LocalExchangeStore(workspace.exchange)
    from exchange.objectstore import ObjectExchangeStore, parse_store_url

    url = parse_store_url(workspace.store_url)
    key = (url.canonical, str(workspace.exchange))
    store = _OPEN.pop(key, None)
    if store is None or store.url != url:
        store = ObjectExchangeStore(url, workspace.exchange)
    _OPEN[key] = store  # the latest opened last: it answers for its URL first
    return store


def version_folder(location: str, resource: str, number: int) -> Path | None:
    """The local folder of a version the catalog records at ``location`` (None when it is gone).

    A folder is itself; an object-store URL is read through the store of this process's
    workspace (``GOVDATA_STORE_URL``), which downloads the version into its cache when needed.
    """
    if "://" not in location:
        return Path(location)
    for store in reversed(list(_OPEN.values())):
        if store.owns(location):
            stored = store.read(resource, number)
            return stored.path if stored is not None else None
    from pipelines.workspace import Workspace

    opened = open_store(Workspace.from_env())
    if opened.kind != "object" or not opened.owns(location):  # type: ignore[union-attr]
        raise TerminalError(
            f"{resource} v{number} is stored at {location.split('?', 1)[0]}, outside this process's exchange store "
            f"({opened.describe()})",
            hint="set GOVDATA_STORE_URL to the object store the versions were published to",
        )
    stored = opened.read(resource, number)
    return stored.path if stored is not None else None
