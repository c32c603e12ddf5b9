"""Identifiers: time-ordered UUIDv7 for batches and runs; sample ids are derived from content in SQL."""

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
# content_hash: sha256 of the normalised text. sample_id: the first 128 bits of sha256(source 0x1f normalised text).
CONTENT_HASH_SQL = "sha256({norm})"
SAMPLE_ID_SQL = "substr(sha256({source} || chr(31) || {norm}), 1, 32)"
