"""Containment of protected items inside longer texts: a word n-gram index, a vectorised scan, alignment.

A held-out item leaks into training data mostly *inside* other text: pasted into a long document, put
under a chat or instruction template, lower-cased, stripped of punctuation, cut to its question, lightly
edited. Whole-text similarity sees none of that. This module finds it the way GPT-3's and Llama's
contamination analyses, datatrove's and OLMo's decontamination do, by word n-grams, plus a verification:

* **Tokens.** Both sides are normalised identically: lower-cased (`pyarrow.compute.utf8_lower`), cut into
  runs of Unicode word characters (Python's `\\w`), so case, punctuation, whitespace and line breaks do not
  count; every Han, Hiragana or Katakana character is a token of its own (those scripts do not separate
  words with spaces, so their n-grams are character n-grams); and template words (`user`, `assistant`,
  `INST`, `### Instruction`, `<|im_start|>`, ...; `MARKUP_WORDS`) are dropped everywhere, so a chat rendering
  or an instruction template neither hides an item nor breaks its n-grams. Token hashes are the 64-bit
  hashes of `lineage.features.minhash`.
* **Index.** Every `ngram`-gram of every protected item with at least `min_words` tokens, as sorted
  uint64 hashes with the item each came from (an item shorter than `ngram` is one gram of all its
  tokens), and a packed bitmap of their low bits that rejects almost every training n-gram with one memory
  read.
* **Scan.** Training texts are tokenised and every n-gram hashed with numpy, a pass of documents at a
  time, in threads; the few n-grams that pass the bitmap are looked up in the sorted keys. A (document,
  item) pair whose n-grams found in the document cover at least `min_cover` of the item is a candidate.
* **Verification.** A candidate's item is aligned with the document's tokens around its densest run of
  hits (`difflib.SequenceMatcher` on token hashes); the score is the share of the item's tokens found in
  aligned blocks of at least `MIN_BLOCK` tokens. A replaced word costs that word (and at most a short
  block around it), a cut answer costs the answer, and shared stock phrases of the domain score little.
  All candidates of a pass are first bounded at once with numpy (the item's tokens in a run of
  `MIN_BLOCK` tokens that the window also has: alignment finds no more), and only those whose bound
  reaches the threshold are aligned: the same decisions, at numpy cost.

Results name the item, the share found and the matched span of the training text in characters.
"""

from __future__ import annotations

import difflib
import os
import unicodedata
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lineage.features.minhash import FNV_PRIME, decode_utf8, fmix64, token_hashes, utf8_buffer, word_bytes

MARKUP_WORDS = (
    "user", "assistant", "system", "human", "gpt", "bot", "inst", "sys", "instruction", "input",
    "response", "output", "im_start", "im_end", "endoftext", "s", "question", "answer",
)  # fmt: skip
MIN_BLOCK = 3  # aligned runs shorter than this are chance agreement on common words, not a copy
BLOOM_BITS = 25  # 4 MiB of packed bits: stays in cache, rejects ~99% of misses at 250,000 keys
DOCS_PER_PASS = 2_000
THREADS = min(2, os.cpu_count() or 1)
MAX_PAIRS_PER_DOC = 64  # candidates verified per document, most hits first (a document copies few items)
_CJK = ((0x3040, 0x30FF), (0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF), (0x20000, 0x2FA1F))


@dataclass(frozen=True)
class Tokens:
    """Normalised tokens of a list of texts: hashes, byte spans, per-text offsets."""

    hashes: np.ndarray  # uint64
    starts: np.ndarray  # byte offsets in the texts' lowered UTF-8, concatenated (see `span`)
    ends: np.ndarray
    offsets: np.ndarray  # n+1: text i has tokens offsets[i]:offsets[i+1]
    text_starts: np.ndarray  # n+1: text i is bytes text_starts[i]:text_starts[i+1] of the concatenation

    def span(self, text: int, first: int, last: int) -> tuple[int, int]:
        """Byte offsets in text `text`'s lowered UTF-8 of its tokens `first` to `last` (positions in `hashes`)."""
        base = int(self.text_starts[text])
        return int(self.starts[first]) - base, int(self.ends[last]) - base


def tokenize(texts: pa.Array | pa.ChunkedArray | Sequence[str | None]) -> Tokens:
    """Tokens of every text (see the module doc), template words removed."""
    arr = texts if isinstance(texts, pa.Array | pa.ChunkedArray) else pa.array(texts, pa.string())
    data, text_starts = utf8_buffer(arr)
    visible = _visible(data)  # None: every byte is
    seen = data if visible is None else data[visible]
    starts, ends = _spans(seen)
    hashes = token_hashes(seen, starts, ends)
    if visible is not None:  # spans back in the bytes of the texts as they are
        starts, ends = visible[starts], visible[ends - 1] + 1
    offsets = np.searchsorted(starts, text_starts)  # no token crosses a text's end: each ends with a space
    markup = np.isin(hashes, _markup_hashes())
    if markup.any():
        keep = ~markup
        hashes, starts, ends = hashes[keep], starts[keep], ends[keep]
        offsets = np.concatenate([[0], np.cumsum(keep)])[offsets]
    return Tokens(hashes, starts, ends, offsets, text_starts)


def _visible(data: np.ndarray) -> np.ndarray | None:
    """Positions of the bytes that are not invisible format characters (Unicode Cf: soft hyphens, zero-width
    joiners, word joiners, byte-order and bidi marks), or None when there are none. Web text carries them inside
    words, where they would cut an item's words in two; a reader sees the word whole, and so does the index. The
    zero-width space stays: it separates words."""
    leads = np.flatnonzero(data >= 0xC2)
    if len(leads) == 0:
        return None
    codepoints, width = decode_utf8(data, leads)
    distinct, inverse = np.unique(codepoints, return_inverse=True)
    invisible = np.array([c != 0x200B and unicodedata.category(chr(c)) == "Cf" for c in distinct.tolist()], bool)
    hidden = invisible[inverse]
    if not hidden.any():
        return None
    mask = np.ones(len(data), bool)
    for k in range(4):
        mask[leads[hidden & (width > k)] + k] = False
    return np.flatnonzero(mask)


def _spans(data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Byte starts and ends of the word runs, each CJK character a run of its own."""
    word = word_bytes(data)
    leads = np.flatnonzero(data >= 0xE3)  # every CJK character is 3 or 4 UTF-8 bytes, leads >= 0xE3
    cjk = np.zeros(len(leads), bool)
    if len(leads):
        codepoints, width = decode_utf8(data, leads)
        for lo, hi in _CJK:
            cjk |= (codepoints >= lo) & (codepoints <= hi)
    if not cjk.any():  # word runs start and end alternately: the data starts outside one and ends with a space
        edges = np.flatnonzero(np.diff(word, prepend=False))
        starts, ends = edges.reshape(-1, 2).T
        return starts.copy(), ends.copy()  # contiguous, for the gathers that follow
    cut = np.zeros(len(data) + 1, bool)  # a token boundary before this byte, inside a run of word bytes
    cut[leads[cjk]] = True
    cut[leads[cjk] + width[cjk]] = True
    before = np.concatenate([[False], word[:-1]])
    after = np.concatenate([word[1:], [False]])
    starts = np.flatnonzero(word & (~before | cut[:-1]))
    ends = np.flatnonzero(word & (~after | cut[1:])) + 1
    return starts, ends


_MARKUP: np.ndarray | None = None


def _markup_hashes() -> np.ndarray:
    global _MARKUP  # computed once: the same hashes for every call
    if _MARKUP is None:
        data, _ = utf8_buffer(pa.array([" ".join(MARKUP_WORDS)]))
        starts, ends = _spans(data)
        _MARKUP = np.sort(token_hashes(data, starts, ends))
    return _MARKUP


def _grams(tokens: np.ndarray, offsets: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Hash of the n tokens starting at every position, and whether they all lie in one text."""
    h = tokens.copy()
    for k in range(1, n):
        head = h[: max(len(h) - k, 0)]
        np.multiply(head, FNV_PRIME, out=head)
        np.add(head, tokens[k:], out=head)
    doc_end = np.repeat(offsets[1:], np.diff(offsets))
    return fmix64(h), np.arange(len(tokens)) + n <= doc_end


def _whole(tokens: np.ndarray, first: np.ndarray, length: np.ndarray) -> np.ndarray:
    """Hash of all `length` tokens from `first` (the same hash `_grams` gives an n-gram of that length)."""
    h = np.zeros(len(first), np.uint64)
    for k in range(int(length.max(initial=0))):
        live = k < length
        h[live] = h[live] * FNV_PRIME + tokens[first[live] + k]
    return fmix64(h)


@dataclass(frozen=True)
class Index:
    """The protected items' n-grams; `items` are positions in the list the index was built from."""

    ngram: int
    min_words: int
    keys: np.ndarray  # sorted uint64 n-gram hashes (an item's repeated n-gram once)
    items: np.ndarray  # int64: the item of each key
    grams: np.ndarray  # per item: its number of distinct n-grams (0: too short, not indexed)
    gram_len: np.ndarray  # per item: the length of its grams (ngram, all its tokens if fewer, 0: not indexed)
    item_len: np.ndarray  # per item: its number of tokens
    item_tokens: list[np.ndarray]
    tokens: np.ndarray  # every item's tokens, concatenated
    token_offsets: np.ndarray  # n+1: item i has tokens[token_offsets[i]:token_offsets[i+1]]
    lengths: tuple[int, ...]  # gram lengths present (ngram, and the lengths of shorter items)
    bloom: np.ndarray
    whole: np.ndarray  # sorted hashes of every item's whole token sequence
    whole_items: np.ndarray  # the item of each

    @property
    def gram_len_all(self) -> np.ndarray:
        """Every item's token count (for the whole-text check)."""
        return np.unique(self.item_len)

    @property
    def size(self) -> int:
        return len(self.item_tokens)

    @property
    def indexed(self) -> int:
        return int(np.count_nonzero(self.grams))


def build_index(texts: pa.Array | Sequence[str | None], *, ngram: int, min_words: int) -> Index:
    tok = tokenize(texts)
    per_item = np.diff(tok.offsets)
    grams, inside = _grams(tok.hashes, tok.offsets, ngram)
    item_of = np.repeat(np.arange(len(per_item)), per_item)
    long_enough = per_item[item_of] >= max(min_words, ngram)
    keys, items = grams[inside & long_enough], item_of[inside & long_enough]
    short = np.flatnonzero((per_item >= min_words) & (per_item < ngram))
    if len(short):
        keys = np.concatenate([keys, _whole(tok.hashes, tok.offsets[short], per_item[short])])
        items = np.concatenate([items, short])
    pairs = np.unique(np.stack([keys, items.astype(np.uint64)], axis=1), axis=0)
    keys, items = pairs[:, 0].copy(), pairs[:, 1].astype(np.int64)
    bits = np.zeros(1 << BLOOM_BITS, bool)
    bits[keys & np.uint64((1 << BLOOM_BITS) - 1)] = True
    bloom = np.packbits(bits, bitorder="little")
    lengths = sorted({ngram, *per_item[short].tolist()})
    nonempty = np.flatnonzero(per_item > 0)
    whole = _whole(tok.hashes, tok.offsets[nonempty], per_item[nonempty])
    order = np.argsort(whole, kind="stable")
    return Index(
        ngram,
        min_words,
        keys,
        items,
        np.bincount(items, minlength=len(per_item)),
        np.where(per_item >= max(min_words, ngram), ngram, np.where(per_item >= min_words, per_item, 0)),
        per_item,
        [tok.hashes[a:b] for a, b in zip(tok.offsets[:-1], tok.offsets[1:], strict=True)],
        tok.hashes,
        tok.offsets,
        tuple(int(x) for x in lengths),
        bloom,
        whole[order],
        nonempty[order],
    )


@dataclass(frozen=True)
class Found:
    """One training text containing one protected item."""

    row: int  # the training text's position in the scanned list
    item: int  # the item's position in the index
    score: float  # share of the item's tokens found in aligned blocks
    kind: str  # "exact": the same normalised text; "contained": the item inside the text
    start: int  # matched span: byte offsets in the text's lowered UTF-8 (see `char_span`)
    end: int


def scan(
    index: Index,
    texts: pa.Array | pa.ChunkedArray | Sequence[str | None],
    *,
    threshold: float,
    min_cover: float = 0.2,
    threads: int = THREADS,
) -> list[Found]:
    """Every (text, item) pair whose verified share reaches `threshold`, the best item of each text first."""
    arr = texts if isinstance(texts, pa.Array | pa.ChunkedArray) else pa.array(texts, pa.string())
    if index.size == 0 or len(arr) == 0:
        return []

    def one_pass(lo: int) -> list[Found]:
        found = _scan_pass(index, arr.slice(lo, DOCS_PER_PASS), threshold, min_cover)
        return [Found(f.row + lo, f.item, f.score, f.kind, f.start, f.end) for f in found]

    starts = range(0, len(arr), DOCS_PER_PASS)
    if threads <= 1 or len(starts) <= 1:
        parts = [one_pass(lo) for lo in starts]
    else:
        with ThreadPoolExecutor(min(threads, len(starts))) as pool:
            parts = list(pool.map(one_pass, starts))
    return [f for part in parts for f in part]


def _scan_pass(index: Index, texts: pa.Array | pa.ChunkedArray, threshold: float, min_cover: float) -> list[Found]:
    tok = tokenize(texts)
    out = _same_text(index, tok)
    pos, item = _hits(index, tok)
    if len(pos) == 0:
        return out
    doc = np.searchsorted(tok.offsets, pos, side="right") - 1
    order = np.lexsort((pos, item, doc))
    pos, item, doc = pos[order], item[order], doc[order]
    bounds = np.flatnonzero(np.concatenate([[True], (doc[1:] != doc[:-1]) | (item[1:] != item[:-1]), [True]]))
    firsts = bounds[:-1]
    cover = _cover(pos, bounds, index.gram_len[item[firsts]]) / np.maximum(index.item_len[item[firsts]], 1)
    groups = _candidates(doc[firsts], cover, min_cover)
    g_doc, g_item = doc[firsts], item[firsts]
    lo, hi = _windows(index, tok, pos - tok.offsets[doc], bounds, g_doc, g_item)
    bound = _block_bounds(index, tok, g_doc[groups], g_item[groups], lo[groups], hi[groups])
    groups = groups[bound >= threshold * index.item_len[g_item[groups]]]
    for g in groups.tolist():  # the few candidates that may reach the threshold: aligned one by one
        found = _align(index, int(g_item[g]), tok, int(g_doc[g]), int(lo[g]), int(hi[g]), threshold)
        if found is not None:
            out.append(found)
    out.sort(key=lambda f: (f.row, f.kind != "exact", -f.score, f.item))
    return out


def _candidates(doc: np.ndarray, cover: np.ndarray, min_cover: float) -> np.ndarray:
    """The (document, item) groups to verify: cover >= min_cover, at most MAX_PAIRS_PER_DOC per document
    (those with the most cover; ties by group order)."""
    candidates = np.flatnonzero(cover >= min_cover)
    candidates = candidates[np.argsort(-cover[candidates], kind="stable")]
    by_doc = np.argsort(doc[candidates], kind="stable")  # within a document: still most cover first
    docs = doc[candidates][by_doc]
    first = np.concatenate([[0], np.flatnonzero(docs[1:] != docs[:-1]) + 1]) if len(docs) else docs
    rank = np.arange(len(docs)) - np.repeat(first, np.diff(np.append(first, len(docs))))
    return np.sort(candidates[by_doc][rank < MAX_PAIRS_PER_DOC])


def _windows(
    index: Index, tok: Tokens, at: np.ndarray, bounds: np.ndarray, doc: np.ndarray, item: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per group of hits (sorted positions `at` in their document): the document's tokens lo:hi around the
    densest run of hits, a window of twice the item's length holding the most, widened by the item's length."""
    length = index.item_len[item]
    group_of = np.repeat(np.arange(len(bounds) - 1), np.diff(bounds))
    span = int(at.max(initial=0)) + 2 * int(length.max(initial=0)) + 1
    key = group_of * span + at  # increasing: groups in order, positions sorted within each
    right = np.searchsorted(key, key + 2 * length[group_of], side="left")
    inside = right - np.arange(len(at))
    most = np.maximum.reduceat(inside, bounds[:-1])
    densest = np.flatnonzero(inside == most[group_of])
    _, first = np.unique(group_of[densest], return_index=True)
    best = densest[first]  # the first position of each group holding the most hits
    count = np.diff(tok.offsets)[doc]
    lo = np.maximum(0, at[best] - length)
    hi = np.minimum(count, at[right[best] - 1] + index.ngram + length)
    return lo, hi


def _block_bounds(
    index: Index, tok: Tokens, doc: np.ndarray, item: np.ndarray, lo: np.ndarray, hi: np.ndarray
) -> np.ndarray:
    """Per candidate: the item's tokens inside a run of MIN_BLOCK tokens that the window lo:hi of the document
    also has, for all candidates at once. A bound on what alignment finds (every aligned block of MIN_BLOCK
    or more is made of such runs; runs are compared by hash, so a collision only raises the bound). Items
    shorter than MIN_BLOCK are bounded by their length."""
    k = MIN_BLOCK
    length = index.item_len[item]
    # Run hashes keyed by candidate: the same run in another candidate's window is another key.
    salt = np.arange(len(item), dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    win_count = np.maximum(hi - lo - k + 1, 0)
    win_at = _ranges(tok.offsets[doc] + lo, win_count)
    win_keys = _runs_at(tok.hashes, win_at, k) ^ np.repeat(salt, win_count)
    runs = np.maximum(length - k + 1, 0)
    item_at = _ranges(index.token_offsets[item], runs)
    shared = np.isin(_runs_at(index.tokens, item_at, k) ^ np.repeat(salt, runs), win_keys)
    # Mark each shared run's first item token; a token is covered when a shared run starts 0..k-1 before it.
    seg = np.concatenate([[0], np.cumsum(length)])
    mark = np.zeros(int(seg[-1]), bool)
    mark[_ranges(seg[:-1], runs)[shared]] = True
    local = np.arange(len(mark)) - np.repeat(seg[:-1], length)
    covered = mark.copy()
    for j in range(1, k):
        covered[j:] |= mark[:-j] & (local[j:] >= j)
    out = np.add.reduceat(covered, seg[:-1]) if len(mark) else np.zeros(len(item), np.int64)
    out = np.where(length > 0, out, 0)  # reduceat reads the next segment for an empty one
    return np.where(length < k, length, out)


def _ranges(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Concatenated arange(start, start + count) for every pair."""
    total = int(counts.sum())
    return np.repeat(starts - np.cumsum(counts) + counts, counts) + np.arange(total)


def _cover(pos: np.ndarray, bounds: np.ndarray, width: np.ndarray) -> np.ndarray:
    """Per group of sorted hit positions: how many tokens the union of their grams covers."""
    group_of = np.repeat(np.arange(len(bounds) - 1), np.diff(bounds))
    step = np.empty(len(pos), np.int64)
    step[:-1] = pos[1:] - pos[:-1]
    step[bounds[1:] - 1] = np.iinfo(np.int64).max  # a group's last gram covers its whole width
    return np.add.reduceat(np.minimum(step, width[group_of]), bounds[:-1])


def _same_text(index: Index, tok: Tokens) -> list[Found]:
    """Texts whose whole normalised token sequence is a protected item's."""
    lengths = np.diff(tok.offsets)
    docs = np.flatnonzero(np.isin(lengths, index.gram_len_all) & (lengths > 0))
    if len(docs) == 0:
        return []
    h = _whole(tok.hashes, tok.offsets[docs], lengths[docs])
    at = np.minimum(np.searchsorted(index.whole, h), len(index.whole) - 1)
    hit = index.whole[at] == h
    out = []
    for d, i in zip(docs[hit].tolist(), index.whole_items[at[hit]].tolist(), strict=True):
        if len(index.item_tokens[i]) == lengths[d]:
            a, b = tok.offsets[d], tok.offsets[d + 1] - 1
            out.append(Found(d, i, 1.0, "exact", *tok.span(d, a, b)))
    return out


def _hits(index: Index, tok: Tokens) -> tuple[np.ndarray, np.ndarray]:
    """(token position, item) of every indexed gram found in the texts, for every gram length indexed."""
    positions, items = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
    mask = np.uint64((1 << BLOOM_BITS) - 1)
    for n in index.lengths:
        grams, inside = _grams(tok.hashes, tok.offsets, n)
        low = grams & mask  # the gram's bit in the packed bitmap: byte low >> 3, bit low & 7
        bit = (index.bloom[low >> np.uint64(3)] >> (low & np.uint64(7)).astype(np.uint8)) & np.uint8(1)
        maybe = np.flatnonzero(bit.view(bool) & inside)
        lo = np.searchsorted(index.keys, grams[maybe], side="left")
        hi = np.searchsorted(index.keys, grams[maybe], side="right")
        reps = hi - lo
        total = int(reps.sum())
        # Every key row lo..hi-1 of every found gram (a gram may belong to several items).
        rows = np.repeat(lo, reps) + np.arange(total) - np.repeat(np.cumsum(reps) - reps, reps)
        its = index.items[rows]
        ok = index.gram_len[its] == n  # a gram counts for the items indexed with grams of its length
        positions.append(np.repeat(maybe, reps)[ok])
        items.append(its[ok])
    return np.concatenate(positions), np.concatenate(items)


def _align(index: Index, item: int, tok: Tokens, doc: int, lo: int, hi: int, threshold: float) -> Found | None:
    """Align the item with the document's tokens lo:hi; None below the threshold."""
    wanted = index.item_tokens[item]
    length = len(wanted)
    first = int(tok.offsets[doc])
    window = tok.hashes[first + lo : first + hi]
    matcher = difflib.SequenceMatcher(None, wanted.tolist(), window.tolist(), autojunk=False)
    blocks = [b for b in matcher.get_matching_blocks() if b.size >= min(MIN_BLOCK, length)]
    score = sum(b.size for b in blocks) / length if length else 0.0
    if not blocks or score < threshold:
        return None
    start_tok = first + lo + blocks[0].b
    end_tok = first + lo + blocks[-1].b + blocks[-1].size - 1
    return Found(doc, item, round(score, 4), "contained", *tok.span(doc, start_tok, end_tok))


def _runs_at(tokens: np.ndarray, at: np.ndarray, k: int) -> np.ndarray:
    """Hash of the k tokens from each position `at` (each must have k tokens from it)."""
    h = tokens[at]
    for j in range(1, k):
        h = h * FNV_PRIME + tokens[at + j]
    return h


def char_span(text: str, start: int, end: int) -> tuple[int, int]:
    """Byte offsets in the lowered UTF-8 of `text` as character offsets in `text` (lowering keeps the
    number of characters: pyarrow maps each code point to one code point)."""
    lowered = pc.utf8_lower(pa.scalar(text, pa.string())).as_py().encode()
    return len(lowered[:start].decode("utf-8", "ignore")), len(lowered[:end].decode("utf-8", "ignore"))
