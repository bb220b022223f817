"""Fetch the reports site's browser assets from the npm registry, pinned by version and checksum.

The offline reports site (``pipelines.site``, ``expectations.docs``) loads Bootstrap, jQuery,
bootstrap-table, Vega, Font Awesome and a few more from ``pipelines/site_assets/vendor/`` instead
of the CDNs Great Expectations' templates name. This script is how those files got there and how
they are checked:

    python tools/vendor_assets.py            # fetch every tarball, verify, (re)write the files
    python tools/vendor_assets.py --check    # offline: the files on disk match the manifest
    python tools/vendor_assets.py --update   # after changing a version below: record new checksums

Each package is fetched as its registry tarball (the URL npm itself uses) and must match the
``integrity`` (sha512) recorded in ``manifest.json``; every extracted file must match its
sha256 there. A mismatch stops with the file named and nothing written. ``--update`` is the only
way to accept new checksums, and the diff of ``manifest.json`` shows what changed.

``inert_urls`` lists, per file, the http(s) strings a vendored file contains outside its license
comment that the browser never requests (an error message's link, a schema id, the
"open in editor" action the site disables). ``tests/reports`` fails on any other one.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import sys
import tarfile
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VENDOR = REPO / "pipelines" / "site_assets" / "vendor"
MANIFEST = VENDOR / "manifest.json"
REGISTRY = "https://registry.npmjs.org"


@dataclass(frozen=True)
class Package:
    """One npm package: the files taken from its tarball (``package/<source>`` → ``vendor/<target>``)."""

    name: str
    version: str
    license: str
    files: dict[str, str]  # source path in the package -> target path under vendor/
    inert_urls: dict[str, list[str]] = field(default_factory=dict)  # target -> URLs the browser never requests

    @property
    def tarball(self) -> str:
        base = self.name.rsplit("/", 1)[-1]
        return f"{REGISTRY}/{self.name}/-/{base}-{self.version}.tgz"


#: The versions Great Expectations 1.24.1's Data Docs templates load from CDNs (``vega@5``,
#: ``vega-lite@5`` and ``vega-embed@6`` pinned to their latest 5.x / 6.x releases). The
#: filter-control stylesheet comes from bootstrap-table 1.19.1 like its script (GX mixes 1.19.0
#: and 1.19.1). Bootstrap 4.3.1's and popper.js 1.12.9's scripts are the very files GX's
#: ``integrity`` attributes name (their sha384 matches).
PACKAGES: tuple[Package, ...] = (
    Package(
        "jquery", "3.7.1", "MIT", {"LICENSE.txt": "jquery/LICENSE.txt", "dist/jquery.min.js": "jquery/jquery.min.js"}
    ),
    Package("popper.js", "1.12.9", "MIT", {"dist/umd/popper.min.js": "popper.js/popper.min.js"}),
    Package(
        "bootstrap",
        "4.3.1",
        "MIT",
        {
            "LICENSE": "bootstrap/LICENSE",
            "dist/css/bootstrap.min.css": "bootstrap/css/bootstrap.min.css",
            "dist/js/bootstrap.min.js": "bootstrap/js/bootstrap.min.js",
        },
        {"bootstrap/js/bootstrap.min.js": ["https://popper.js.org/"]},  # in an error message's text
    ),
    Package(
        "bootstrap-table",
        "1.19.1",
        "MIT",
        {
            "LICENSE": "bootstrap-table/LICENSE",
            "dist/bootstrap-table.min.css": "bootstrap-table/bootstrap-table.min.css",
            "dist/bootstrap-table.min.js": "bootstrap-table/bootstrap-table.min.js",
            "dist/extensions/filter-control/bootstrap-table-filter-control.min.css": (
                "bootstrap-table/extensions/filter-control/bootstrap-table-filter-control.min.css"
            ),
            "dist/extensions/filter-control/bootstrap-table-filter-control.min.js": (
                "bootstrap-table/extensions/filter-control/bootstrap-table-filter-control.min.js"
            ),
        },
    ),
    Package(
        "bootstrap-datepicker",
        "1.9.0",
        "Apache-2.0",
        {
            "LICENSE": "bootstrap-datepicker/LICENSE",
            "dist/css/bootstrap-datepicker.min.css": "bootstrap-datepicker/css/bootstrap-datepicker.min.css",
            "dist/js/bootstrap-datepicker.min.js": "bootstrap-datepicker/js/bootstrap-datepicker.min.js",
        },
    ),
    Package(
        "@forevolve/bootstrap-dark",
        "1.1.0",
        "MIT",
        {
            "LICENSE": "bootstrap-dark/LICENSE",
            "dist/css/bootstrap-prefers-dark.min.css": "bootstrap-dark/css/bootstrap-prefers-dark.min.css",
        },
    ),
    Package(
        "@fortawesome/fontawesome-free",
        "6.6.0",
        "CC-BY-4.0 AND OFL-1.1 AND MIT",
        {
            "LICENSE.txt": "fontawesome-free/LICENSE.txt",
            "css/all.min.css": "fontawesome-free/css/all.min.css",
            **{
                f"webfonts/{font}.{ext}": f"fontawesome-free/webfonts/{font}.{ext}"
                for font in ("fa-brands-400", "fa-regular-400", "fa-solid-900", "fa-v4compatibility")
                for ext in ("woff2", "ttf")
            },
        },
    ),
    Package("vega", "5.33.1", "BSD-3-Clause", {"build/vega.min.js": "vega/vega.min.js"}),
    Package(
        "vega-lite",
        "5.23.0",
        "BSD-3-Clause",
        {"LICENSE": "vega-lite/LICENSE", "build/vega-lite.min.js": "vega-lite/vega-lite.min.js"},
        {
            "vega-lite/vega-lite.min.js": [
                "https://vega.github.io/schema/vega/v5.json",  # the $schema id of compiled specs
                "https://github.com/vega/vega-lite/issues/2415",  # in a warning's text
            ]
        },
    ),
    Package(
        "vega-embed",
        "6.29.0",
        "BSD-3-Clause",
        {"LICENSE": "vega-embed/LICENSE", "build/vega-embed.min.js": "vega-embed/vega-embed.min.js"},
        {
            "vega-embed/vega-embed.min.js": [
                "https://vega.github.io/editor/",  # the "open in editor" action (the site turns actions off)
                "https://github.com/Starcounter-Jack/JSON-Patch",  # in an error's text
                "https://",  # a URL-scheme test in the loader
                "http://",
            ]
        },
    ),
)


class VendorError(Exception):
    """A tarball or file does not match its pinned checksum, or cannot be fetched."""


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def integrity(data: bytes) -> str:
    """npm's ``dist.integrity`` form: ``sha512-<base64>``."""
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


def load_manifest(path: Path = MANIFEST) -> dict[str, object]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise VendorError(f"{path}: cannot read the manifest: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("packages"), list):
        raise VendorError(f"{path}: not a vendor manifest (no 'packages' list)")
    return data


def check(vendor: Path = VENDOR, manifest_path: Path | None = None) -> list[str]:
    """Problems with the files on disk (empty when every file matches the manifest and nothing else is there)."""
    manifest = load_manifest(manifest_path or vendor / "manifest.json")
    problems: list[str] = []
    listed = set()
    for package in manifest["packages"]:  # type: ignore[attr-defined]
        for entry in package["files"]:
            target = vendor / entry["target"]
            listed.add(target.resolve())
            if not target.is_file():
                problems.append(f"{target}: missing ({package['name']}@{package['version']} {entry['source']})")
                continue
            actual = sha256_bytes(target.read_bytes())
            if actual != entry["sha256"]:
                problems.append(
                    f"{target}: sha256 {actual} differs from the manifest's {entry['sha256']} "
                    f"({package['name']}@{package['version']}); run tools/vendor_assets.py to restore it"
                )
    for path in sorted(vendor.rglob("*")):
        if path.is_file() and path.name != "manifest.json" and path.resolve() not in listed:
            problems.append(f"{path}: not in the manifest (remove it, or add it to tools/vendor_assets.py)")
    return problems


def _fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=60) as response:  # a fixed https registry URL
        data: bytes = response.read()
    return data


def _extract(package: Package, tarball: bytes) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as archive:
        members = {m.name.split("/", 1)[1]: m for m in archive.getmembers() if m.isfile() and "/" in m.name}
        for source in package.files:
            member = members.get(source)
            if member is None:
                raise VendorError(f"{package.name}@{package.version}: the tarball has no {source}")
            extracted = archive.extractfile(member)
            if extracted is None:  # pragma: no cover - isfile() members always extract
                raise VendorError(f"{package.name}@{package.version}: cannot read {source}")
            files[source] = extracted.read()
    return files


def fetch(vendor: Path = VENDOR, *, update: bool = False) -> dict[str, object]:
    """Fetch, verify and write every package's files; return the manifest (written when ``update``)."""
    pinned = {} if update else {p["name"]: p for p in load_manifest(vendor / "manifest.json")["packages"]}  # type: ignore[attr-defined]
    entries = []
    staged: dict[Path, bytes] = {}
    for package in PACKAGES:
        tarball = _fetch(package.tarball)
        digest = integrity(tarball)
        expected = pinned.get(package.name)
        if not update:
            if expected is None or expected["version"] != package.version:
                raise VendorError(
                    f"{package.name}@{package.version} is not the manifest's version; run with --update to pin it"
                )
            if expected["integrity"] != digest:
                raise VendorError(f"{package.tarball}: integrity {digest} differs from the manifest's")
        files = _extract(package, tarball)
        recorded = {f["source"]: f["sha256"] for f in expected["files"]} if expected else {}
        listed = []
        for source, target in package.files.items():
            data = files[source]
            actual = sha256_bytes(data)
            if not update and recorded.get(source) != actual:
                raise VendorError(f"{package.name}@{package.version} {source}: sha256 {actual} is not the manifest's")
            staged[vendor / target] = data
            listed.append({"source": source, "target": target, "sha256": actual, "bytes": len(data)})
        entries.append(
            {
                "name": package.name,
                "version": package.version,
                "license": package.license,
                "tarball": package.tarball,
                "integrity": digest,
                "files": listed,
                "inert_urls": package.inert_urls,
            }
        )
    for path, data in staged.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    manifest: dict[str, object] = {
        "about": "Browser assets of the reports site; written by tools/vendor_assets.py (do not edit by hand).",
        "packages": entries,
    }
    if update:
        (vendor / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="verify the files on disk against the manifest (offline)")
    mode.add_argument("--update", action="store_true", help="fetch and record new checksums (after a version change)")
    args = parser.parse_args(argv)
    try:
        if args.check:
            problems = check()
            for problem in problems:
                sys.stderr.write(f"{problem}\n")
            if problems:
                return 1
            sys.stdout.write(f"{VENDOR.relative_to(REPO)}: every file matches manifest.json\n")
            return 0
        fetch(update=args.update)
    except (VendorError, OSError) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    sys.stdout.write(f"{VENDOR.relative_to(REPO)}: {len(PACKAGES)} packages written and verified\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
