"""Identifiers: time-ordered UUIDv7 for batches and runs; sample ids are derived in SQL from each record."""

import os
import time
import uuid


def uuid7() -> str:
    """A UUIDv7 (RFC 9562): 48-bit millisecond timestamp, then random bits; sorts by creation time."""
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms << 80) | (0x7 << 76) | ((rand >> 68) << 64) | (0b10 << 62) | (rand & ((1 << 62) - 1))
    return str(uuid.UUID(int=value))


_WHITESPACE = ("' '", "chr(9)", "chr(10)", "chr(13)", "chr(12)")
# Canonical text: NFC, surrounding whitespace removed (RE2's \s: space, tab, LF, CR, FF); inner breaks kept.
# trim() with a character set costs as much as the rest of the extraction, so it runs only on texts that start
# or end with whitespace (a byte test); the lambda names the NFC text once.
_EDGE_WHITESPACE = " OR ".join(f"starts_with(c, {w}) OR ends_with(c, {w})" for w in _WHITESPACE)
CANONICAL_TEXT_SQL = (
    f"list_transform([nfc_normalize({{text}})], lambda c: CASE WHEN {_EDGE_WHITESPACE} "
    f"THEN trim(c, {' || '.join(_WHITESPACE)}) ELSE c END)[1]"
)
# Normalised text (of canonical text): inner whitespace runs collapsed to one space. The regex runs only on
# texts that have such a run: it costs as much as everything else in the extraction together.
NORMALIZED_TEXT_SQL = (
    "CASE WHEN contains({text}, '  ') OR contains({text}, chr(9)) OR contains({text}, chr(10)) "
    "OR contains({text}, chr(13)) OR contains({text}, chr(12)) "
    "THEN regexp_replace({text}, '\\s+', ' ', 'g') ELSE {text} END"
)
# content_hash: sha256 of the normalised text; exact duplicates share it (exact-dedup groups by it).
CONTENT_HASH_SQL = "sha256({norm})"
# sample_id, the first 128 bits of a sha256 (store format 2; a record never disappears into another):
# - a record with its own id: sha256("id" 0x1f source 0x1f external_id). Its identity is the id its source gave
#   it, so two records with the same text stay two samples, and the same id with other text is an error.
# - a record without an id: sha256(source 0x1f normalised text), the format-1 id, for the first record of its
#   input with that text; the n-th repeat in the same input gets sha256(that id 0x1f n) (`REPEAT_ID_SQL`, applied
#   after staging, see `lineage.ingest.identity`). Such a record has nothing but its text and its place among
#   equal texts to be known by: re-ingesting the input (or the same rows in another order) is a no-op, repeats in
#   one input stay distinct samples, and a store made by format 1 keeps matching its id-less records.
SAMPLE_ID_SQL = (
    "CASE WHEN {external_id} IS NULL THEN substr(sha256({source} || chr(31) || {norm}), 1, 32) "
    "ELSE substr(sha256('id' || chr(31) || {source} || chr(31) || {external_id}), 1, 32) END"
)
REPEAT_ID_SQL = "substr(sha256({sample_id} || chr(31) || {ordinal}), 1, 32)"
