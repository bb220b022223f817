"""tools/vendor_assets.py: the site's browser assets are the pinned npm files, checked by sha256."""

from __future__ import annotations

import importlib.util
import io
import json
import shutil
import sys
import tarfile
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def vendor_assets() -> ModuleType:
    spec = importlib.util.spec_from_file_location("govdata_vendor_assets", REPO / "tools" / "vendor_assets.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def test_the_vendored_files_match_the_manifest(vendor_assets: ModuleType) -> None:
    assert vendor_assets.check() == []
    assert vendor_assets.main(["--check"]) == 0


def test_the_manifest_pins_what_the_script_fetches(vendor_assets: ModuleType) -> None:
    manifest = vendor_assets.load_manifest()
    pinned = {p["name"]: p for p in manifest["packages"]}
    assert sorted(pinned) == sorted(p.name for p in vendor_assets.PACKAGES)
    for package in vendor_assets.PACKAGES:
        entry = pinned[package.name]
        assert entry["version"] == package.version
        assert entry["integrity"].startswith("sha512-")
        assert {f["source"]: f["target"] for f in entry["files"]} == package.files
        assert all(len(f["sha256"]) == 64 for f in entry["files"])


def test_a_changed_missing_or_unlisted_file_is_named(vendor_assets: ModuleType, tmp_path: Path) -> None:
    vendor = tmp_path / "vendor"
    shutil.copytree(vendor_assets.VENDOR, vendor)
    jquery = vendor / "jquery" / "jquery.min.js"
    jquery.write_bytes(jquery.read_bytes() + b"\n// changed")
    (vendor / "vega" / "vega.min.js").unlink()
    (vendor / "extra.js").write_text("alert(1)", encoding="utf-8")
    problems = vendor_assets.check(vendor)
    assert len(problems) == 3
    assert any(str(jquery) in p and "differs from the manifest" in p for p in problems)
    assert any("vega.min.js: missing (vega@" in p for p in problems)
    assert any("extra.js: not in the manifest" in p for p in problems)


def _tarball(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(f"package/{name}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_fetch_verifies_the_tarball_and_every_file(
    vendor_assets: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = vendor_assets.Package("demo-lib", "1.0.0", "MIT", {"dist/lib.min.js": "demo-lib/lib.min.js"})
    tarball = _tarball({"dist/lib.min.js": b"window.lib = 1;"})
    monkeypatch.setattr(vendor_assets, "PACKAGES", (package,))
    monkeypatch.setattr(vendor_assets, "_fetch", lambda url: tarball)
    vendor = tmp_path / "vendor"
    vendor.mkdir()
    vendor_assets.fetch(vendor, update=True)
    assert (vendor / "demo-lib" / "lib.min.js").read_bytes() == b"window.lib = 1;"
    assert vendor_assets.check(vendor) == []
    manifest = json.loads((vendor / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["packages"][0]["tarball"] == "https://registry.npmjs.org/demo-lib/-/demo-lib-1.0.0.tgz"

    # the registry now serves other bytes under the same version: refused, nothing written
    (vendor / "demo-lib" / "lib.min.js").unlink()
    monkeypatch.setattr(vendor_assets, "_fetch", lambda url: _tarball({"dist/lib.min.js": b"window.lib = 2;"}))
    with pytest.raises(vendor_assets.VendorError, match=r"integrity .* differs from the manifest"):
        vendor_assets.fetch(vendor)
    assert not (vendor / "demo-lib" / "lib.min.js").exists()

    # a tarball without a pinned file is named
    monkeypatch.setattr(vendor_assets, "_fetch", lambda url: _tarball({"README.md": b"x"}))
    with pytest.raises(vendor_assets.VendorError, match=r"the tarball has no dist/lib\.min\.js"):
        vendor_assets.fetch(vendor, update=True)


def test_scoped_package_tarball_url(vendor_assets: ModuleType) -> None:
    package = vendor_assets.Package("@fortawesome/fontawesome-free", "6.6.0", "MIT", {})
    assert package.tarball == "https://registry.npmjs.org/@fortawesome/fontawesome-free/-/fontawesome-free-6.6.0.tgz"
