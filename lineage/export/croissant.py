"""Croissant 1.1 metadata (JSON-LD) for an export: files with sha256, a record set per split with its fields,
the licences, Responsible-AI fields for synthetic data (share, generators, generation depth) and PROV-O
provenance. `mlcroissant validate` passes on it and `mlcroissant load` yields the rows (tests/test_export.py).

The hf format's Arrow files have no Croissant reader (mlcroissant reads Parquet, CSV and JSON), so its record
sets read the Parquet mirror the hf export writes beside them (`data/{split}-*.parquet`); the Arrow files are
listed as file objects with their sha256.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import duckdb

if TYPE_CHECKING:
    from lineage.build.record import BuildRecord

CONFORMS_TO = "http://mlcommons.org/croissant/1.1"

# The Croissant 1.1 context (as mlcroissant writes it), plus PROV-O and lineage's own terms.
CONTEXT: dict[str, Any] = {
    "@language": "en",
    "@vocab": "https://schema.org/",
    "arrayShape": "cr:arrayShape",
    "citeAs": "cr:citeAs",
    "column": "cr:column",
    "conformsTo": "dct:conformsTo",
    "containedIn": "cr:containedIn",
    "cr": "http://mlcommons.org/croissant/",
    "rai": "http://mlcommons.org/croissant/RAI/",
    "data": {"@id": "cr:data", "@type": "@json"},
    "dataType": {"@id": "cr:dataType", "@type": "@vocab"},
    "dct": "http://purl.org/dc/terms/",
    "equivalentProperty": "cr:equivalentProperty",
    "examples": {"@id": "cr:examples", "@type": "@json"},
    "extract": "cr:extract",
    "field": "cr:field",
    "fileProperty": "cr:fileProperty",
    "fileObject": "cr:fileObject",
    "fileSet": "cr:fileSet",
    "format": "cr:format",
    "includes": "cr:includes",
    "isArray": "cr:isArray",
    "isLiveDataset": "cr:isLiveDataset",
    "jsonPath": "cr:jsonPath",
    "key": "cr:key",
    "md5": "cr:md5",
    "parentField": "cr:parentField",
    "path": "cr:path",
    "recordSet": "cr:recordSet",
    "references": "cr:references",
    "regex": "cr:regex",
    "repeated": "cr:repeated",
    "replace": "cr:replace",
    "samplingRate": "cr:samplingRate",
    "sc": "https://schema.org/",
    "separator": "cr:separator",
    "source": "cr:source",
    "subField": "cr:subField",
    "transform": "cr:transform",
    "prov": "http://www.w3.org/ns/prov#",
    "lineage": "https://github.com/lineage/lineage#",
}

_MIME = {"parquet": "application/x-parquet", "jsonl": "application/jsonlines", "hf": "application/x-arrow"}
_INTEGER = {"_lineage_generation"}
_LISTS = {"_lineage_parent_ids", "_lineage_tags"}


def dataset_name(build: BuildRecord) -> str:
    """A Croissant name: letters, digits, `-`, `_` and `.` only (`mix@v1` is not one)."""
    return re.sub(r"[^A-Za-z0-9_.-]", "-", f"{build.name}-v{build.version}")


def croissant(
    build: BuildRecord, manifest: dict[str, Any], generators: list[str], con: duckdb.DuckDBPyConnection
) -> dict[str, Any]:
    fmt = manifest["format"]
    readable = "parquet" if fmt == "hf" else fmt  # the files the record sets read: hf's Parquet mirror
    splits = [s for s, n in manifest["splits"]["rows"].items() if n]
    fields = _fields(manifest, con)
    doc: dict[str, Any] = {
        "@context": CONTEXT,
        "@type": "sc:Dataset",
        "conformsTo": CONFORMS_TO,
        "name": dataset_name(build),
        "description": manifest["spec"].get("description") or f"lineage build {build.name} version {build.version}",
        "version": f"{build.version}.0.0",
        "datePublished": str(build.info["created_at"])[:10],
        "url": f"lineage://builds/{build.name}/v{build.version}",
        "citeAs": f"lineage build {build.name} version {build.version}, spec {manifest['spec_hash'][:12]}",
        "license": _licenses(manifest["licenses"]),
        "distribution": _files(manifest["files"], fmt) + _file_sets(splits, readable),
        "recordSet": [_record_set(split, fields, readable) for split in splits],
    }
    return doc | _provenance(manifest, generators)


def _licenses(mix: list[dict[str, Any]]) -> list[Any]:
    out: list[Any] = []
    for row in mix:
        if row["spdx"]:
            out.append(f"https://spdx.org/licenses/{row['spdx']}.html")
        elif row["license"] != "unknown":
            out.append({"@type": "sc:CreativeWork", "name": row["license"]})
    return out


def _files(files: list[dict[str, Any]], fmt: str) -> list[dict[str, Any]]:
    return [
        {
            "@type": "cr:FileObject",
            "@id": f["path"],
            "name": f["path"],
            "contentUrl": f["path"],
            "sha256": f["sha256"],
            "contentSize": f"{f['bytes']} B",
            "encodingFormat": _mime(f["path"], fmt),
        }
        for f in files
    ]


def _mime(path: str, fmt: str) -> str:
    if path.endswith(".json"):
        return "application/json"
    return _MIME["parquet"] if path.endswith(".parquet") else _MIME[fmt]


def _file_sets(splits: list[str], fmt: str) -> list[dict[str, Any]]:
    return [
        {
            "@type": "cr:FileSet",
            "@id": f"{split}-files",
            "name": f"{split}-files",
            "encodingFormat": _MIME[fmt],
            "includes": f"data/{split}-*.{fmt}",
        }
        for split in splits
    ]


def _fields(manifest: dict[str, Any], con: duckdb.DuckDBPyConnection) -> list[tuple[str, str, bool]]:
    """(name, dataType, is a list) per column; for verbatim exports, the scalar keys every record has."""
    if not manifest["verbatim"]:
        return [(c, "sc:Integer" if c in _INTEGER else "sc:Text", c in _LISTS) for c in manifest["columns"]]
    rows = con.sql(
        "SELECT k, count(*), list_distinct(list(json_type(s.record, '$.\"' || k || '\"'))) FROM samples s "
        "SEMI JOIN _export_members m USING (sample_id), unnest(json_keys(s.record)) AS t(k) GROUP BY k ORDER BY k"
    ).fetchall()
    types = {"VARCHAR": "sc:Text", "BIGINT": "sc:Integer", "UBIGINT": "sc:Integer", "DOUBLE": "sc:Float",
             "BOOLEAN": "sc:Boolean"}
    total = manifest["size"]
    return [(k, types[t[0]], False) for k, n, t in rows if n == total and len(t) == 1 and t[0] in types]


def _record_set(split: str, fields: list[tuple[str, str, bool]], fmt: str) -> dict[str, Any]:
    source = {"fileSet": {"@id": f"{split}-files"}}
    out = []
    for name, dtype, is_list in fields:
        field: dict[str, Any] = {
            "@type": "cr:Field",
            "@id": f"{split}/{name}",
            "name": name,
            "dataType": dtype,
            "source": {**source, "extract": {"column": name}},
        }
        if name == "messages":
            # A list of {role, content}: a repeated field of two sub-fields, read from the same column.
            field["isArray"] = True
            field["subField"] = [
                {"@type": "cr:Field", "@id": f"{split}/messages/{sub}", "name": sub, "dataType": "sc:Text",
                 "source": {**source, "extract": {"column": "messages"}, "transform": {"jsonPath": sub}}}
                for sub in ("role", "content")
            ]
            field.pop("dataType")
        elif is_list:
            field["isArray"] = True
        out.append(field)
    return {"@type": "cr:RecordSet", "@id": split, "name": split, "field": out}


def _provenance(manifest: dict[str, Any], generators: list[str]) -> dict[str, Any]:
    comp, total = manifest["composition"], max(manifest["size"], 1)
    synthetic = comp["origin"].get("synthetic", 0)
    depth = max((int(g) for g in comp["generation"]), default=0)
    sources = ", ".join(f"{s} ({n:,})" for s, n in comp["source"].items())
    return {
        "rai:dataCollection": (
            f"A lineage build: {manifest['size']:,} samples drawn by a seeded spec from sources {sources}. "
            f"{synthetic / total:.1%} synthetic (generators: {', '.join(generators) or 'none'}; generation depth "
            f"up to {depth})."
        ),
        "rai:dataCollectionType": [
            t for t, n in (("Synthetic data", synthetic), ("Real data", total - synthetic)) if n
        ],
        "rai:dataPreprocessingProtocol": [
            "Drawn by a build spec (quotas, floors) from the samples its filters did not drop",
            _contamination_sentence(manifest["checks"]),
        ],
        "prov:wasDerivedFrom": [
            {"@id": f"source:{s}", "name": s, "lineage:samples": n} for s, n in comp["source"].items()
        ],
        "prov:wasGeneratedBy": [
            {"@type": "prov:Activity", "name": f"generated by {g}", "prov:used": g} for g in generators
        ],
        "lineage:syntheticShare": round(synthetic / total, 6),
        "lineage:generators": generators,
        "lineage:generationDepth": comp["generation"],
        "lineage:licenseComposition": [
            {"name": r["license"], "spdx": r["spdx"], "count": r["count"], "share": r["share"]}
            for r in manifest["licenses"]
        ],
        "lineage:storeVersion": manifest["store_version"],
        "lineage:specHash": manifest["spec_hash"],
        "lineage:contaminationCheck": manifest["checks"],
    }


def _contamination_sentence(checks: dict[str, Any]) -> str:
    """The contamination check in words (its figures are in `lineage:contaminationCheck`, as JSON)."""
    sets = ", ".join(checks.get("protected_sets") or []) or "none"
    when = ("at export, as the protected sets changed since the build" if checks.get("rechecked")
            else "when the build was made (the protected sets are unchanged since)")
    verdict = ("LEAKS" if not checks.get("clean") else
               f"no leak found, NOT VERIFIED: {checks['unverified']}"
               if checks.get("unverified") else "no member holds, contains or descends from a protected item")
    return (f"Contamination check against the protected sets ({sets}; {checks.get('protected_samples', 0):,} "
            f"items), {when}: {verdict}")
