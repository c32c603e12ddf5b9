"""Exports of a build: Parquet or JSONL that reproduce the input records, Hugging Face datasets, and
a manifest plus a Croissant 1.1 metadata file carrying the build's provenance."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.json as pajson
import pyarrow.parquet as pq

from lineage.errors import LineageError
from lineage.segments import file_sha256

if TYPE_CHECKING:
    from lineage.build import Build

FORMATS = ("parquet", "jsonl", "hf")
PROVENANCE = ("sample_id", "origin", "source", "method", "generator", "generation", "parent_ids", "license")


def export_build(build: Build, output: Path, *, fmt: str, with_provenance: bool) -> Path:
    if fmt not in FORMATS:
        raise LineageError(f"unknown export format `{fmt}`; choose from {', '.join(FORMATS)}")
    output.mkdir(parents=True, exist_ok=True)
    rows = build.members(columns=f"record, {', '.join(PROVENANCE)}")
    files = {"parquet": _parquet, "jsonl": _jsonl, "hf": _hf}[fmt](rows, output, with_provenance)
    manifest = _manifest(build, output, files, fmt)
    (output / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str) + "\n", encoding="utf-8")
    (output / "croissant.json").write_text(json.dumps(croissant(build, manifest), indent=2) + "\n", encoding="utf-8")
    return output


def _records(rows: pa.Table) -> pa.Table:
    """The original records as a table; Arrow infers one schema across them."""
    data = "\n".join(rows["record"].to_pylist()).encode()
    try:
        return pajson.read_json(io.BytesIO(data), read_options=pajson.ReadOptions(block_size=max(len(data), 1 << 20)))
    except pa.ArrowInvalid as exc:
        raise LineageError(f"records of this build do not share one schema ({exc}); export as jsonl") from None


def _parquet(rows: pa.Table, output: Path, with_provenance: bool) -> list[Path]:
    table = _records(rows)
    if with_provenance:
        for name in PROVENANCE:
            table = table.append_column(f"_lineage_{name}", rows[name])
    path = output / "data.parquet"
    pq.write_table(table, path, compression="zstd")
    return [path]


def _jsonl(rows: pa.Table, output: Path, with_provenance: bool) -> list[Path]:
    path = output / "data.jsonl"
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for row in rows.to_pylist():
            if with_provenance:
                record = json.loads(row["record"])
                record["_lineage"] = {k: row[k] for k in PROVENANCE}
                f.write(json.dumps(record, ensure_ascii=False) + "\n")
            else:
                f.write(row["record"] + "\n")  # the input line itself: byte-for-byte
    return [path]


def _hf(rows: pa.Table, output: Path, with_provenance: bool) -> list[Path]:
    try:
        import datasets
    except ImportError:
        raise LineageError("the hf export needs the `datasets` package: pip install 'lineage[hf]'") from None
    table = _records(rows)
    if with_provenance:
        for name in PROVENANCE:
            table = table.append_column(f"_lineage_{name}", rows[name])
    datasets.Dataset(table).save_to_disk(str(output / "hf"))
    return sorted(p for p in (output / "hf").rglob("*") if p.is_file())


def _manifest(build: Build, output: Path, files: list[Path], fmt: str) -> dict[str, Any]:
    info = build.info
    return {
        "build": build.name,
        "build_version": build.version,
        "format": fmt,
        "store_version": info["store_version"],
        "size": info["size"],
        "seed": info["seed"],
        "spec": json.loads(info["spec"]),
        "spec_hash": info["spec_hash"],
        "composition": json.loads(info["composition"]),
        "checks": json.loads(info["checks"]),
        "files": [
            {"path": p.relative_to(output).as_posix(), "sha256": file_sha256(p), "bytes": p.stat().st_size}
            for p in files
        ],
    }


def croissant(build: Build, manifest: dict[str, Any]) -> dict[str, Any]:
    """Croissant 1.1 (JSON-LD) metadata with PROV-O provenance: sources, generators, synthetic share, depth."""
    comp = manifest["composition"]
    total = max(manifest["size"], 1)
    generators = _generators(build)
    files = [
        {
            "@type": "cr:FileObject",
            "@id": f["path"],
            "name": f["path"],
            "contentUrl": f["path"],
            "sha256": f["sha256"],
            "contentSize": f"{f['bytes']} B",
            "encodingFormat": "application/x-parquet" if f["path"].endswith(".parquet") else "application/jsonlines",
        }
        for f in manifest["files"]
    ]
    return {
        "@context": {
            "@language": "en",
            "@vocab": "https://schema.org/",
            "cr": "http://mlcommons.org/croissant/",
            "prov": "http://www.w3.org/ns/prov#",
            "sc": "https://schema.org/",
            "lineage": "https://github.com/lineage/lineage#",
        },
        "@type": "sc:Dataset",
        "conformsTo": "http://mlcommons.org/croissant/1.1",
        "name": f"{build.name}@v{build.version}",
        "description": manifest["spec"].get("description") or f"lineage build {build.name} version {build.version}",
        "version": f"{build.version}.0.0",
        "distribution": files,
        "prov:wasDerivedFrom": [
            {"@id": f"source:{s}", "name": s, "lineage:samples": n} for s, n in comp["source"].items()
        ],
        "prov:wasGeneratedBy": [
            {"@type": "prov:Activity", "name": f"generated by {g}", "prov:used": g} for g in generators
        ],
        "lineage:syntheticShare": round(comp["origin"].get("synthetic", 0) / total, 6),
        "lineage:generationDepth": comp["generation"],
        "lineage:storeVersion": manifest["store_version"],
        "lineage:specHash": manifest["spec_hash"],
        "lineage:contaminationCheck": manifest["checks"],
    }


def _generators(build: Build) -> list[str]:
    members = build.members(columns="generator")
    return sorted({g for g in members["generator"].to_pylist() if g})
