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


# Normalised text: Unicode NFC, surrounding whitespace trimmed, inner whitespace runs collapsed to one space.
NORMALIZED_TEXT_SQL = r"trim(regexp_replace(nfc_normalize({text}), '\s+', ' ', 'g'))"
# Canonical text: NFC, surrounding whitespace (not only spaces) removed; inner line breaks are kept.
CANONICAL_TEXT_SQL = r"regexp_replace(nfc_normalize({text}), '^\s+|\s+$', '', 'g')"
# content_hash: sha256 of the normalised text. sample_id: the first 128 bits of sha256(source 0x1f normalised text).
CONTENT_HASH_SQL = "sha256({norm})"
SAMPLE_ID_SQL = "substr(sha256({source} || chr(31) || {norm}), 1, 32)"
