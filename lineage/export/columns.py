"""The columns an export carries, as DuckDB expressions over `samples s`: computed in the query, never per row
in Python.

- `text`: the canonical text lineage deduplicated, measured and checked for contamination;
- `messages`: chat records in the OpenAI shape, a list of {role, content}, from a `messages` list or a
  ShareGPT `conversations` list (`from`/`value`, human -> user, gpt -> assistant); null for other records;
- `record`: the original record as JSON text;
- `_lineage_*`: provenance, on request.
"""

from __future__ import annotations

from lineage.core.sqlutil import quote_ident
from lineage.errors import LineageError, option

TRAINING = ("text", "messages")
PROVENANCE = (
    "sample_id", "external_id", "origin", "source", "method", "generator", "generation", "parent_ids",
    "gen_params", "license", "language", "tags", "batch_id",
)

_MESSAGE = """'[{"role": "VARCHAR", "content": "VARCHAR"}]'"""
_SHAREGPT = """'[{"from": "VARCHAR", "value": "VARCHAR"}]'"""
_ROLE = "CASE m.\"from\" WHEN 'human' THEN 'user' WHEN 'gpt' THEN 'assistant' ELSE m.\"from\" END"
# A substring test first: most records are not chat, and it spares parsing their JSON (2x on plain text).
MESSAGES_SQL = (
    "CASE WHEN NOT (contains(s.record, '\"messages\"') OR contains(s.record, '\"conversations\"')) THEN NULL "
    f"WHEN json_type(s.record, '$.messages') = 'ARRAY' THEN from_json(s.record -> '$.messages', {_MESSAGE}) "
    f"WHEN json_type(s.record, '$.conversations') = 'ARRAY' THEN list_transform("
    f"from_json(s.record -> '$.conversations', {_SHAREGPT}), lambda m: {{'role': {_ROLE}, 'content': m.value}}) END"
)

_EXPRESSIONS = {"text": "s.text", "messages": MESSAGES_SQL, "record": "s.record"} | {
    f"_lineage_{name}": f"s.{name}" for name in PROVENANCE
}
AVAILABLE = tuple(_EXPRESSIONS)


def choose(columns: list[str] | tuple[str, ...] | None, *, provenance: bool) -> list[str]:
    """The export's column names: `columns` (default text and messages), plus every `_lineage_*` column when
    `provenance`; unknown names are refused with the list of known ones."""
    chosen = list(columns) if columns else list(TRAINING)
    unknown = [c for c in chosen if c not in _EXPRESSIONS]
    if unknown:
        raise LineageError(f"{option('columns')}: unknown column `{unknown[0]}`; choose from {', '.join(AVAILABLE)}")
    if provenance:
        chosen += [f"_lineage_{p}" for p in PROVENANCE if f"_lineage_{p}" not in chosen]
    return list(dict.fromkeys(chosen))


def select_list(columns: list[str]) -> str:
    return ", ".join(f"{_EXPRESSIONS[c]} AS {quote_ident(c)}" for c in columns)


def verbatim_jsonl_sql(provenance: bool) -> str:
    """The JSON line of each record: the input line itself, or with a `_lineage` object added as its last key
    (by text, so the record's own bytes stay as they were; json_merge_patch would drop null values)."""
    if not provenance:
        return "s.record AS line"
    pairs = ", ".join(f"'{p}', s.{p}" for p in PROVENANCE)
    head = "rtrim(left(rtrim(s.record), length(rtrim(s.record)) - 1))"
    comma = f"CASE WHEN right({head}, 1) = '{{' THEN '' ELSE ', ' END"
    return f"""{head} || {comma} || '"_lineage": ' || json_object({pairs}) || '}}' AS line"""
