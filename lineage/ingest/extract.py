"""One SQL statement turns raw (input_row, record) batches into typed provenance columns plus errors.

Each record's fields are read by two list lookups (`json_type` and `json_extract_string` over all paths at
once), so no field is parsed again; every field is type-checked, and a
failed check becomes an entry `field<TAB>reason` in the row's `errors` list instead of an exception,
so one bad row never hides the others.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from lineage.core.ids import CANONICAL_TEXT_SQL, CONTENT_HASH_SQL, NORMALIZED_TEXT_SQL, SAMPLE_ID_SQL
from lineage.errors import option
from lineage.ingest.options import IngestOptions
from lineage.languages import BCP47_SQL
from lineage.limits import MAX_GENERATION

_STRING = "'VARCHAR'"
_INTEGER = "('BIGINT', 'UBIGINT')"


@dataclass
class _Fields:
    """The JSON paths extracted from each record, by field name, and columns derived once from them."""

    names: list[str]
    derived: dict[str, str] = field(default_factory=dict)

    def index(self, name: str) -> int:
        if name not in self.names:
            self.names.append(name)
        return self.names.index(name) + 1

    def x(self, name: str) -> str:
        return f"x{self.index(name)}"

    def t(self, name: str) -> str:
        return f"t{self.index(name)}"

    def derive(self, name: str, expression: str) -> str:
        """A column computed once next to the fields (`expression` may use their x and t columns)."""
        self.derived[name] = expression
        return name

    def paths(self) -> list[str]:
        return ['$."' + n.replace("\\", "\\\\").replace('"', '\\"') + '"' for n in self.names]


def _kind(t: str) -> str:
    """DuckDB's JSON type names, said in JSON's own words."""
    return (
        f"CASE {t} WHEN 'VARCHAR' THEN 'string' WHEN 'BIGINT' THEN 'integer' WHEN 'UBIGINT' THEN 'integer' "
        f"WHEN 'DOUBLE' THEN 'number' WHEN 'BOOLEAN' THEN 'boolean' ELSE lower({t}) END"
    )


def _absent(t: str) -> str:
    return f"({t} IS NULL OR {t} = 'NULL')"


def _type_error(t: str, allowed: str, what: str) -> str:
    return f"CASE WHEN NOT {_absent(t)} AND {t} NOT IN {allowed} THEN 'expected {what}, got ' || {_kind(t)} END"


def _string(f: _Fields, name: str, default: str) -> tuple[str, str]:
    x, t = f.x(name), f.t(name)
    value = f"CASE WHEN {_absent(t)} THEN CAST({default} AS VARCHAR) WHEN {t} = {_STRING} THEN {x} END"
    return value, _type_error(t, f"({_STRING})", "a string")


def _string_list(f: _Fields, name: str, default: str) -> tuple[str, str]:
    x, t = f.x(name), f.t(name)
    items = f"json_type(CASE WHEN {t} = 'ARRAY' THEN {x} END, '$[*]')"
    ok_items = f.derive(
        f"ok{t}",
        f"coalesce(list_bool_and(list_transform({items}, lambda y: y IN ('VARCHAR', 'BIGINT', 'UBIGINT'))), true)",
    )
    value = (
        f"CASE WHEN {_absent(t)} THEN CAST({default} AS VARCHAR[]) WHEN {t} = {_STRING} THEN [{x}] "
        f"WHEN {t} = 'ARRAY' AND {ok_items} THEN CAST(CAST(CASE WHEN {t} = 'ARRAY' THEN {x} END AS JSON) AS VARCHAR[]) END"
    )
    error = (
        f"CASE WHEN NOT {_absent(t)} AND NOT ({t} = {_STRING} OR ({t} = 'ARRAY' AND {ok_items})) "
        f"THEN 'expected a string or a list of strings, got ' || {_kind(t)} END"
    )
    return value, error


# A chat turn as one line `role: content`. OpenAI `messages`: content is a string or a list of parts (their `text`),
# tool calls follow as `name(arguments)`. ShareGPT `conversations`: `from`/`value`, with its role names mapped.
_CONTENT = (
    "CASE json_type(m, '$.content') WHEN 'VARCHAR' THEN m->>'content' "
    "WHEN 'ARRAY' THEN array_to_string(list_transform(CAST(m->'content' AS JSON[]), "
    "lambda p: coalesce(p->>'text', '')), '') ELSE '' END"
)
_TOOLS = (
    "CASE WHEN json_type(m, '$.tool_calls') = 'ARRAY' THEN array_to_string(list_transform("
    "CAST(m->'tool_calls' AS JSON[]), lambda c: coalesce(c->'function'->>'name', '?') || '(' || "
    "coalesce(c->'function'->>'arguments', '') || ')'), ' ') END"
)
_MESSAGE = f"coalesce(m->>'role', '?') || ': ' || concat_ws(' ', nullif({_CONTENT}, ''), {_TOOLS})"
_TURN = (
    "CASE m->>'from' WHEN 'human' THEN 'user' WHEN 'gpt' THEN 'assistant' WHEN 'function' THEN 'tool' "
    "ELSE coalesce(m->>'from', '?') END || ': ' || (m->>'value')"
)


def _turns(x: str, t: str, line: str) -> str:
    """The turns of a chat list field as lines (NULL unless the field is a list)."""
    return (
        f"array_to_string(list_transform(CAST(CAST(CASE WHEN {t} = 'ARRAY' THEN {x} END AS JSON) AS JSON[]), "
        f"lambda m: {line}), chr(10))"
    )


def _text(f: _Fields, opts: IngestOptions) -> tuple[str, str]:
    if opts.template is not None:
        return _template_text(f, opts)
    x, t = f.x(opts.text_field), f.t(opts.text_field)
    mx, mt = f.x("messages"), f.t("messages")
    cx, ct = f.x("conversations"), f.t("conversations")
    # The first ShareGPT turn without a string `value` (its 0-based index), else NULL.
    bad_turn = f.derive(
        f"bad{ct}",
        f"list_position(list_transform(CAST(CAST(CASE WHEN {ct} = 'ARRAY' THEN {cx} END AS JSON) AS JSON[]), "
        "lambda m: coalesce(json_type(m, '$.value') = 'VARCHAR', false)), false) - 1",
    )
    # The first OpenAI turn with neither a `content` (a string or a list of parts) nor `tool_calls` (content null),
    # else NULL: `{"role": "user"}` and `{"content": 5}` were stored as the text `user:`, the turn lost unsaid.
    bad_message = f.derive(
        f"badm{mt}",
        f"list_position(list_transform(CAST(CAST(CASE WHEN {mt} = 'ARRAY' THEN {mx} END AS JSON) AS JSON[]), "
        "lambda m: coalesce(json_type(m, '$.content') IN ('VARCHAR', 'ARRAY') OR (coalesce(json_type(m, "
        "'$.content'), 'NULL') = 'NULL' AND json_type(m, '$.tool_calls') = 'ARRAY'), false)), false) - 1",
    )
    # The first turn of each chat list that gives a key twice (0-based), else NULL: a turn is read to make the
    # text, and parsers disagree on which of the two values counts (the text checked would not be the one trained on).
    dup_m, dup_c = (
        f.derive(
            f"dup{kt}",
            f"list_position(list_transform(CAST(CAST(CASE WHEN {kt} = 'ARRAY' THEN {kx} END AS JSON) AS JSON[]), "
            "lambda m: coalesce(len(list_distinct(json_keys(m))) < len(json_keys(m)), false)), true) - 1",
        )
        for kx, kt in ((mx, mt), (cx, ct))
    )
    # Alpaca: instruction, optional input, output, as the Alpaca prompt lays them out (blank line between).
    ix, it, nx, ot, ox = f.x("instruction"), f.t("instruction"), f.x("input"), f.t("output"), f.x("output")
    alpaca = f"concat_ws(chr(10) || chr(10), {ix}, nullif({nx}, ''), {ox})"
    value = (
        f"CASE WHEN {t} = {_STRING} THEN {x} WHEN NOT {_absent(t)} THEN NULL "
        f"WHEN {mt} = 'ARRAY' AND {bad_message} IS NULL THEN {_turns(mx, mt, _MESSAGE)} "
        f"WHEN {ct} = 'ARRAY' AND {bad_turn} IS NULL THEN {_turns(cx, ct, _TURN)} "
        f"WHEN {it} = {_STRING} AND {ot} = {_STRING} THEN {alpaca} END"
    )
    # A text and a chat in one record: lineage keeps, deduplicates and checks one text per sample (the text), yet
    # an export writes the chat as its `messages` column, so a held-out item in the chat left unchecked.
    nonempty = {key: f"coalesce(json_array_length(CASE WHEN {kt} = 'ARRAY' THEN {kx} END), 0) > 0"
                for key, kx, kt in (("messages", mx, mt), ("conversations", cx, ct))}  # an empty list holds nothing
    turns = " OR ".join(nonempty.values())
    chat = f"CASE WHEN {nonempty['messages']} THEN 'messages' ELSE 'conversations' END"
    error = (
        f"CASE WHEN NOT {_absent(t)} AND {t} <> {_STRING} THEN 'expected a string, got ' || {_kind(t)} "
        f"WHEN {t} = {_STRING} AND ({turns}) THEN 'the record also gives a chat, `' || "
        f"{chat} || '`: a sample has one text, which lineage deduplicates and checks for held-out data, and an "
        "export would write the chat unchecked; give one of the two (without the text, the chat is rendered as "
        "`role: content` lines)' "
        f"WHEN {_absent(t)} AND {mt} = 'ARRAY' AND {dup_m} IS NOT NULL "
        f"THEN 'messages[' || {dup_m} || ']: a key given twice in this turn; keep one' "
        f"WHEN {_absent(t)} AND {mt} = 'ARRAY' AND {bad_message} IS NOT NULL "
        f"THEN 'messages[' || {bad_message} || ']: a turn needs `content` (a string or a list of parts), or "
        "`tool_calls`' "
        f"WHEN {_absent(t)} AND coalesce({mt}, '') <> 'ARRAY' AND {ct} = 'ARRAY' AND {dup_c} IS NOT NULL "
        f"THEN 'conversations[' || {dup_c} || ']: a key given twice in this turn; keep one' "
        f"WHEN {_absent(t)} AND coalesce({mt}, '') <> 'ARRAY' AND {ct} = 'ARRAY' AND {bad_turn} IS NOT NULL "
        f"THEN 'conversations[' || {bad_turn} || ']: a turn needs a string `value`' "
        f"WHEN {_absent(t)} AND coalesce({mt}, '') <> 'ARRAY' AND coalesce({ct}, '') <> 'ARRAY' "
        f"AND NOT coalesce({it} = {_STRING} AND {ot} = {_STRING}, false) THEN 'missing (no `{_lit(opts.text_field)}`, `messages`, "
        f"`conversations` or `instruction` and `output`; set {option('text_field')} or {option('template')})' "
        "END"
    )
    return value, error


def _template_text(f: _Fields, opts: IngestOptions) -> tuple[str, str]:
    pieces, missing = [], []
    for literal, name in opts.template_fields():
        if literal:
            pieces.append(_quote(literal))
        if name:
            x, t = f.x(name), f.t(name)
            pieces.append(x)
            missing.append(f"CASE WHEN {_absent(t)} THEN '`{_lit(name)}`' END")
    value = "concat(" + ", ".join(pieces) + ")"
    error = f"nullif('missing ' || concat_ws(', ', {', '.join(missing)}) || ' (needed by {option('template')})', 'missing  (needed by {option('template')})')"
    return value, error


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _lit(value: str) -> str:
    """A value placed inside a SQL string literal."""
    return value.replace("'", "''")


def build_sql(opts: IngestOptions, models: Sequence[str] = ()) -> tuple[str, dict[str, object]]:
    """The extraction query over a registered table `raw(input_row, record)` and its parameters.

    `models`: registered model names; a synthetic sample generated by one needs neither parents nor a
    generation (resolve gives it 1 + the deepest generation of the model's training build).
    """
    f = _Fields([])
    text, text_err = _text(f, opts)
    ext_x, ext_t = f.x(opts.id_field), f.t(opts.id_field)
    cols = {
        name: _string(f, name, f"$d_{name}")
        for name in ("origin", "source", "method", "generator", "license", "language")
    }
    parents, parents_err = _string_list(f, opts.parent_field, "[]")
    tags, tags_err = _string_list(f, "tags", "$d_tags")
    gx, gt = f.x("generation"), f.t("generation")
    px, pt = f.x("gen_params"), f.t("gen_params")
    extract = ", ".join(f"s[{i}] AS x{i}, t[{i}] AS t{i}" for i in range(1, len(f.names) + 1))
    derived = "".join(f", {expression} AS {name}" for name, expression in f.derived.items())
    params: dict[str, object] = {f"d_{k}": getattr(opts, k) for k in cols}
    import json as _json

    params |= {
        "paths": f.paths(),
        "type_paths": ["$", *f.paths()],
        "d_tags": list(opts.tags),
        "d_generation": opts.generation,
        "d_gen_params": _json.dumps(opts.gen_params, sort_keys=True) if opts.gen_params is not None else None,
        "max_bytes": opts.max_record_bytes,
        "models": list(models),
    }
    checks = [
        ("text", text_err),
        (
            "id",
            _type_error(ext_t, "('VARCHAR', 'BIGINT', 'UBIGINT')", "a string or an integer").replace("'id'", "'id'"),
        ),
        *((name, err) for name, (_, err) in cols.items()),
        ("generation", _type_error(gt, _INTEGER, "an integer")),
        (opts.parent_field, parents_err),
        ("tags", tags_err),
        ("gen_params", _type_error(pt, "('OBJECT')", "an object")),
    ]
    # `name<TAB>reason`, NULL when the check passes (|| with NULL is NULL).
    checks_sql = ", ".join(f"'{_lit(name)}' || chr(9) || ({err})" for name, err in checks)
    sql = f"""
WITH typed_paths AS (
    -- One parse gives the type of the record and of every field; malformed JSON gives NULL (try).
    SELECT input_row, record, strlen(record) > $max_bytes AS too_big,
        CASE WHEN NOT too_big THEN try(json_type(record, $type_paths)) END AS types
    FROM raw
), keyed AS (
    -- A key given twice makes the record ambiguous (JSON parsers disagree on which value counts).
    SELECT *, CASE WHEN types[1] = 'OBJECT' THEN json_keys(record) END AS keys FROM typed_paths
), checked AS (
    -- Every path read is a distinct top-level key, so a record with no more keys than it has of those
    -- (list_count: the non-null types, the root's included) repeats none: only the others, records with
    -- other keys too, pay for the precise check (list_distinct costs 3x the parse that lists the keys).
    SELECT input_row, record, types[1] AS root, types[2:] AS t,
        CASE WHEN len(keys) > list_count(types) - 1 THEN
            CASE WHEN len(list_distinct(keys)) < len(keys)
                 THEN list_filter(keys, lambda k, i: list_position(keys, k) < i)[1] END END AS twice,
        CASE WHEN too_big THEN 'too_big' WHEN types IS NULL THEN 'malformed'
             WHEN types[1] <> 'OBJECT' THEN 'not_object' WHEN twice IS NOT NULL THEN 'twice' END AS bad
    FROM keyed
), parsed AS (
    -- Only well-formed objects reach json_extract_string (NULL in, NULL out): no row can fail the query.
    SELECT input_row, record, bad, twice, root, t, json_extract_string(CASE WHEN bad IS NULL THEN record END, $paths) AS s
    FROM checked
), fields AS (
    SELECT input_row, record, bad, twice, root, {extract}{derived} FROM parsed
), typed AS (
    SELECT input_row, record, bad, twice, root,
        {CANONICAL_TEXT_SQL.format(text=text)} AS text,
        CASE WHEN {ext_t} = {_STRING} OR {ext_t} IN {_INTEGER} THEN {ext_x} END
            AS external_id,
        {", ".join(f"{value} AS {name}" for name, (value, _) in cols.items())},
        CASE WHEN {_absent(gt)} THEN CAST($d_generation AS BIGINT) WHEN {gt} IN {_INTEGER} THEN TRY_CAST({gx} AS BIGINT) END
            AS given_generation,
        {gt} AS generation_type, {gx} AS generation_raw,
        {parents} AS parent_refs,
        {tags} AS tags,
        CASE WHEN {_absent(pt)} THEN CAST($d_gen_params AS VARCHAR) WHEN {pt} = 'OBJECT' THEN {px} END
            AS gen_params,
        list_filter([{checks_sql}], lambda e: e IS NOT NULL) AS type_errors
    FROM fields
), normed AS (
    SELECT *, {NORMALIZED_TEXT_SQL.format(text="text")} AS norm FROM typed
)
SELECT input_row, record, text, external_id, origin, source, method, generator, given_generation,
    parent_refs, gen_params, license, language, tags,
    {CONTENT_HASH_SQL.format(norm="norm")} AS content_hash,
    {SAMPLE_ID_SQL.format(source="source", external_id="external_id", norm="norm")} AS sample_id,
    CASE
        WHEN bad = 'too_big' THEN ['record' || chr(9) || 'record is ' || strlen(record) || ' bytes, over the limit of '
            || $max_bytes || ' ({option('max_record_bytes')})']
        WHEN bad = 'malformed' THEN ['record' || chr(9) || 'malformed JSON']
        WHEN bad = 'twice' THEN [twice || chr(9) || 'key given twice in this record; keep one']
        WHEN bad = 'not_object' THEN ['record' || chr(9) || 'expected a JSON object, got ' || {_kind("root")}]
        ELSE list_filter(type_errors || [
            CASE WHEN len(type_errors) = 0 AND norm = '' THEN 'text' || chr(9) || 'empty after trimming whitespace' END,
            CASE WHEN origin IS NULL AND NOT list_contains(list_transform(type_errors, lambda e: split_part(e, chr(9), 1)), 'origin')
                 THEN 'origin' || chr(9) || 'missing: pass {option('origin', 'real|synthetic')} or give an `origin` column' END,
            CASE WHEN origin NOT IN ('real', 'synthetic')
                 THEN 'origin' || chr(9) || 'must be real or synthetic, got `' || origin || '`' END,
            CASE WHEN source IS NULL AND NOT list_contains(list_transform(type_errors, lambda e: split_part(e, chr(9), 1)), 'source')
                 THEN 'source' || chr(9) || 'missing: pass {option('source', 'NAME')} or give a `source` column' END,
            CASE WHEN source = '' THEN 'source' || chr(9) || 'must not be empty' END,
            CASE WHEN generation_type IN {_INTEGER}
                      AND (given_generation IS NULL OR given_generation < 0 OR given_generation > {MAX_GENERATION})
                 THEN 'generation' || chr(9) || 'must be between 0 and {MAX_GENERATION:,}, got ' || generation_raw END,
            CASE WHEN origin = 'real' AND generator IS NOT NULL
                 THEN 'generator' || chr(9) || 'real samples have no generator, got `' || generator || '`' END,
            CASE WHEN origin = 'real' AND coalesce(given_generation, 0) <> 0
                 THEN 'generation' || chr(9) || 'real samples are generation 0, got ' || given_generation END,
            CASE WHEN origin = 'synthetic' AND given_generation IS NULL AND len(parent_refs) = 0
                      AND (generator IS NULL OR NOT list_contains($models::VARCHAR[], generator))
                 THEN 'generation' || chr(9) || 'synthetic sample has neither parents nor a generation: '
                      || 'pass {option('generation', 'N')} or {option('parent_field', 'FIELD')}' END,
            CASE WHEN language IS NOT NULL AND NOT regexp_full_match(language, '{BCP47_SQL}')
                 THEN 'language' || chr(9) || 'not a BCP-47 language tag, got `' || language || '`; write e.g. en, pt-BR, zh-Hant' END,
            CASE WHEN origin = 'synthetic' AND given_generation = 0
                 THEN 'generation' || chr(9) || 'synthetic samples are generation 1 or more, got 0' END
        ], lambda e: e IS NOT NULL)
    END AS errors
FROM normed
"""
    return sql, params
