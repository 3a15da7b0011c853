"""`nbops models list|show|assign`: read and manage the model registry."""

from __future__ import annotations

import argparse
import json
from typing import Any


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("models", help="list, show and assign registered model versions")
    parser.add_argument("--registry", help="registry root (path or fsspec URL)")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB")
    verbs.required = True

    listing = verbs.add_parser("list", help="models with their latest version and stage assignments")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=handle_list)

    show = verbs.add_parser("show", help="one version's manifest summary: NAME, NAME@VERSION or NAME@STAGE")
    show.add_argument("ref", metavar="NAME[@VERSION|@STAGE]")
    show.add_argument("--json", action="store_true", help="the whole manifest as JSON")
    show.set_defaults(handler=handle_show)

    assign = verbs.add_parser("assign", help="point a stage at a version (an earlier version is a rollback)")
    assign.add_argument("ref", metavar="NAME@VERSION")
    assign.add_argument("stage", help="e.g. staging or production")
    assign.add_argument("--reason", help="why, written into the stage history")
    assign.add_argument("--git-tag", action="store_true", help="also write GTO's stage tag")
    assign.add_argument("--json", action="store_true")
    assign.set_defaults(handler=handle_assign)


def _registry(args: argparse.Namespace) -> Any:
    from ..models.registry import project_registry

    return project_registry(args.registry)


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(x)) for x in column) for column in zip(headers, *rows)]
    lines = ["  ".join(str(h).ljust(w) for h, w in zip(headers, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)) for row in rows]
    return "\n".join(line.rstrip() for line in lines)


def list_models(registry: Any) -> list[dict[str, Any]]:
    models = []
    for name in registry.models():
        versions = registry.versions(name)
        models.append({"name": name, "latest": versions[-1], "versions": versions, "stages": registry.stages(name)})
    return models


def handle_list(args: argparse.Namespace) -> int:
    registry = _registry(args)
    models = list_models(registry)
    if args.json:
        print(json.dumps(models, indent=2))
    elif not models:
        print(f"no models in {registry.root} yet (promote one: `nbops promote NAME`)")
    else:
        rows = [[m["name"], m["latest"], str(len(m["versions"])), ", ".join(f"{s}={v}" for s, v in sorted(m["stages"].items())) or "-"]
                for m in models]
        print(_table(["model", "latest", "versions", "stages"], rows))
    return 0


def handle_show(args: argparse.Namespace) -> int:
    registry = _registry(args)
    name, version = registry.resolve(args.ref)
    manifest = registry.manifest(name, version)
    if args.json:
        print(json.dumps(manifest, indent=2))
        return 0
    stages = [s for s, v in registry.stages(name).items() if v == version]
    git = (manifest.get("lineage") or {}).get("git") or {}
    rows = [
        ["version", version], ["stages", ", ".join(stages) or "-"], ["created", manifest.get("created", "")],
        ["estimator", manifest.get("estimator", "")],
        ["git commit", f"{(git.get('commit') or 'none')[:12]}{' (dirty)' if git.get('dirty') else ''}"],
        ["sha256", manifest.get("sha256", "")],
        ["package", str(registry.local_path(name, version)) if registry.local else f"{registry.root}/{name}/{version}"],
        ["wheel", manifest.get("wheel", "")],
    ]
    rows += [[f"metric {k}", f"{v:.6g}" if isinstance(v, float) else str(v)] for k, v in (manifest.get("metrics") or {}).items()]
    rows += [["input", ", ".join(f"{c['name']}:{c['dtype']}" for c in (manifest.get("signature") or {}).get("columns", []))]]
    print(f"{name}@{version}")
    print(_table(["field", "value"], rows))
    return 0


def handle_assign(args: argparse.Namespace) -> int:
    from ..core.exceptions import RegistryError

    registry = _registry(args)
    name, sep, selector = args.ref.partition("@")
    if not sep or not selector:
        raise RegistryError(f"{args.ref!r}: give the version to assign as NAME@VERSION, e.g. {name or 'model'}@0.1.0")
    name, version = registry.resolve(args.ref)
    if args.git_tag:
        from ..core.extras import require

        require("gto", "promote", "writing GTO's git tags (--git-tag)", load=False)
    with registry.lock(name, purpose=f"assign {name} {version} → {args.stage}"):
        entry = registry.assign(name, version, args.stage, action="assign", reason=args.reason)
    tags: list[str] = []
    if args.git_tag:
        from ..core.project import find_root
        from ..promotion.promote import tag_stage

        tags = tag_stage(find_root() or ".", name, version, args.stage)
    if args.json:
        print(json.dumps({"name": name, "version": version, "stage": args.stage, **entry, "tags": tags}, indent=2))
    else:
        print(f"{name}: {args.stage} → {version}" + "".join(f"\ngit tag: {t}" for t in tags))
    return 0
