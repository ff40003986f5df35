"""Re-creates delivery_gateway/static/vendor/ from the npm registry: the exact versions below, their files and
licences, and MANIFEST.json (tarball integrity, sha256 of every vendored file).

Run from the repository root: `python scripts/vendor_static.py` (needs `npm`; the browser needs no build step).
Never edits anything outside static/vendor/, and never takes a file from anywhere but an `npm pack` tarball.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENDOR = ROOT / "delivery_gateway" / "static" / "vendor"


@dataclass(frozen=True)
class Vendored:
    """One npm package: `files` maps a path in its tarball to the name it gets in static/vendor/<folder>/."""

    name: str
    version: str
    folder: str
    files: dict[str, str]
    licence: str | None = "LICENSE"  # path in the tarball; None: the package ships none (see `licence_from`)
    licence_from: tuple[str, str, str] | None = None  # (package, version, path) whose licence text applies
    bundles: list[tuple[str, str, str]] = field(default_factory=list)  # bundled packages whose licence to add
    note: str = ""


PACKAGES = [
    Vendored("react", "18.3.1", "react", {"umd/react.production.min.js": "react.production.min.js"}),
    Vendored("react-dom", "18.3.1", "react-dom", {"umd/react-dom.production.min.js": "react-dom.production.min.js"}),
    Vendored(
        "graphiql",
        "3.9.0",
        "graphiql",
        {"graphiql.min.js": "graphiql.min.js", "graphiql.min.css": "graphiql.min.css"},
        note="The package's own UMD bundle; it includes its dependencies (@graphiql/react, @graphiql/toolkit, "
        "graphql, graphql-ws, CodeMirror 5, markdown-it...), all MIT-licensed. Last major version with a UMD build.",
    ),
    Vendored(
        "@graphiql/plugin-explorer",
        "3.2.6",
        "graphiql-plugin-explorer",
        {"dist/index.umd.js": "index.umd.js", "dist/style.css": "style.css"},
        licence=None,
        licence_from=("graphiql", "3.9.0", "LICENSE"),
        bundles=[("graphiql-explorer", "0.9.0", "LICENSE")],
        note="package.json says MIT but the tarball has no licence file: LICENSE is that of its repository "
        "(graphql/graphiql, as shipped in graphiql 3.9.0); the bundle includes graphiql-explorer "
        "(LICENSE-graphiql-explorer).",
    ),
    Vendored("graphql-ws", "6.4.2", "graphql-ws", {"umd/graphql-ws.min.js": "graphql-ws.min.js"}, licence="LICENSE.md"),
]


def npm_pack(spec: str, into: Path) -> dict:
    """`npm pack` one exact version into `into` (npm checks the tarball against the registry's integrity)."""
    result = subprocess.run(
        ["npm", "pack", "--json", "--silent", "--pack-destination", str(into), spec],
        check=True,
        capture_output=True,
        text=True,
        cwd=into,
    )
    return json.loads(result.stdout)[0]


def member(tarball: Path, path: str) -> bytes:
    with tarfile.open(tarball) as archive:
        extracted = archive.extractfile(f"package/{path}")
        if extracted is None:
            raise SystemExit(f"{tarball.name}: {path} is not a file")
        return extracted.read()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def main() -> int:
    if shutil.which("npm") is None:
        print("npm is needed to vendor the static files", file=sys.stderr)
        return 2
    manifest: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="vendor-static-") as tmp:
        work = Path(tmp)
        packed: dict[str, tuple[Path, dict]] = {}

        def tarball(name: str, version: str) -> tuple[Path, dict]:
            spec = f"{name}@{version}"
            if spec not in packed:
                info = npm_pack(spec, work)
                packed[spec] = (work / info["filename"], info)
            return packed[spec]

        if VENDOR.exists():
            shutil.rmtree(VENDOR)
        VENDOR.mkdir(parents=True)
        for package in PACKAGES:
            path, info = tarball(package.name, package.version)
            target = VENDOR / package.folder
            target.mkdir()
            files: dict[str, str] = {}
            for source, name in package.files.items():
                data = member(path, source)
                (target / name).write_bytes(data)
                files[name] = sha256(data)
            if package.licence is not None:
                licence = member(path, package.licence)
            else:
                other, _ = tarball(*package.licence_from[:2])
                licence = member(other, package.licence_from[2])
            (target / "LICENSE").write_bytes(licence)
            files["LICENSE"] = sha256(licence)
            for bundled_name, bundled_version, bundled_path in package.bundles:
                bundled, _ = tarball(bundled_name, bundled_version)
                data = member(bundled, bundled_path)
                name = f"LICENSE-{bundled_name}"
                (target / name).write_bytes(data)
                files[name] = sha256(data)
            manifest[package.folder] = {
                "package": package.name,
                "version": package.version,
                "tarball_integrity": info["integrity"],
                "files": files,
                **({"note": package.note} if package.note else {}),
            }
            print(f"{package.name}@{package.version} -> static/vendor/{package.folder}/ ({', '.join(files)})")
    (VENDOR / "MANIFEST.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
