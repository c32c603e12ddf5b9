"""MinHash signatures of word n-gram shingles, LSH candidates and exact verification, vectorised with numpy.

Pure functions, shared by near-dedup and the contamination filter. No Python loop runs per document or
per shingle: texts become one UTF-8 byte array, tokens are runs of word bytes, token and shingle hashes
are computed over all tokens at once, and the permutations run over blocks of documents at once. Texts
are processed `DOCS_PER_PASS` documents at a time, so the per-token arrays stay small and cache-resident.

The scheme (`scheme()`, stored with cached signatures as config.json) fixes every step, so signatures
stay comparable across library versions:

* tokens: text lowercased by `pyarrow.compute.utf8_lower`, then maximal runs of word characters as in
  Python's `re.findall(r"\\w+", text)` (`str.isalnum()` or `_`); a null text is empty.
* token hash: the token's UTF-8 bytes as little-endian 8-byte words (the last zero-padded) folded by
  `h = (h xor word) * 0x100000001b3` (mod 2^64) from h = the byte length, then the 64-bit MurmurHash3
  finalizer. Eight bytes a step keeps the vectorised loop short (steps = the longest token / 8).
* shingle: `ngram` consecutive tokens; a document with fewer tokens is one shingle of all of them;
  a document with no tokens has no shingles and the empty signature (all 2^32-1), which matches nothing.
* shingle hash: Horner fold `h = h * 0x100000001b3 + token_hash` (mod 2^64) from 0, then the 64-bit
  MurmurHash3 finalizer, high 32 bits.
* permutations: datasketch's "affine32" scheme (its default since 2.0): the 32-bit MurmurHash3
  finalizer, then `a * h + b mod 2^32` with odd `a`; a and b are drawn by numpy's legacy
  `RandomState(seed)` (a stream numpy keeps frozen) exactly as datasketch 2.0 draws them. So a
  signature equals `datasketch.MinHash(num_perm, seed=seed, hashfunc=lambda h: h)` updated with our
  shingle hashes. No prime: datasketch's older Mersenne-prime scheme ("legacy") folds 61-bit values
  down to 32 bits, which datasketch found biases estimates on large sets (its issue #212).

Near duplicates within one set of documents are found in two steps that any engine can reproduce:
`candidate_pairs` bands the signatures for high recall at the threshold (a candidate is cheap, a miss is
lost), then `verify_exact` keeps the candidates whose exact Jaccard similarity of shingle-hash sets (the
distinct 32-bit shingle hashes above, recomputed from the texts of the candidates only) reaches the
threshold. Exact verification has no estimation error: no pair below the threshold is kept, and a pair
above it is lost only if banding missed it (probability 0.002 at the threshold, less above it, for the
default 128 values and 0.8). `lsh_pairs` and `match` verify by the estimate instead.
"""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from itertools import pairwise
from typing import Any, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

SCHEME_VERSION = 1
EMPTY = np.uint32(0xFFFFFFFF)  # the signature value of a document without shingles
_LOW_BYTES = np.array([(1 << (8 * k)) - 1 for k in range(9)], np.uint64)  # mask of the k low bytes
FNV_PRIME = np.uint64(0x100000001B3)
SHINGLE_MULTIPLIER = FNV_PRIME
BAND_MULTIPLIER = np.uint32(0x9E3779B1)  # odd: h -> (h xor value) * it is a bijection for each value
BLOCK_SHINGLES = 8192  # shingles per permutation block: (num_perm x block) uint32 stays in L2 cache
VERIFY_BLOCK = 65_536  # candidate pairs compared at once by their signatures
VERIFY_SHINGLES = 1 << 20  # shingle look-ups at once in exact verification
DOCS_PER_PASS = 2_000  # documents hashed at once: small per-token arrays (~100 bytes a token) stay cached
THREADS = min(4, os.cpu_count() or 1)  # threads hashing passes of documents at once
LSH_WEIGHTS = (0.01, 0.99)  # false positive, false negative weights of the band choice
CANDIDATE_WEIGHTS = (0.001, 0.999)  # the same for candidates verified exactly: recall first

T = TypeVar("T")


def scheme(*, ngram: int, num_perm: int, seed: int) -> dict[str, Any]:
    """Everything that determines a signature; cached signatures are keyed by (a hash of) this."""
    return {
        "scheme_version": SCHEME_VERSION,
        "tokeniser": "pyarrow utf8_lower, then runs of Python \\w (str.isalnum() or '_')",
        "unicode": unicodedata.unidata_version,
        "ngram": ngram,
        "short_documents": "fewer tokens than ngram: one shingle of all tokens; no tokens: empty signature",
        "token_hash": "murmur3-fmix64(fold h=(h^w)*0x100000001b3 mod 2^64 from h=byte length, w = utf-8 bytes "
        "as little-endian u64 words, last zero-padded)",
        "shingle_hash": "high 32 bits of murmur3-fmix64(horner fold h*0x100000001b3 + token_hash mod 2^64)",
        "permutation": "datasketch affine32: murmur3-fmix32, then a*h+b mod 2^32, a odd",
        "permutation_params": "numpy RandomState(seed): a = randint(0, 2^31, num_perm, uint32)*2+1, "
        "b = randint(0, 2^32, num_perm, uint32)",
        "prime": None,
        "num_perm": num_perm,
        "seed": seed,
        "dtype": "uint32",
    }


# --- tokens ---------------------------------------------------------------------------------------


def utf8_buffer(texts: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """The lowercased UTF-8 bytes of all texts, each followed by a space, concatenated, and n+1 offsets.

    The space ends every document's last token, so no token runs from one document into the next.
    """
    lowered = pc.utf8_lower(pc.fill_null(texts, ""))
    arr = pc.binary_join_element_wise(lowered, pa.scalar(" ", lowered.type), pa.scalar("", lowered.type))
    if isinstance(arr, pa.ChunkedArray):  # 64-bit offsets where chunks are joined: no 2 GB limit
        arr = arr.chunk(0) if arr.num_chunks == 1 else arr.cast(pa.large_string()).combine_chunks()
    if len(arr) == 0:
        return np.zeros(0, np.uint8), np.zeros(1, np.int64)
    width = np.int64 if pa.types.is_large_string(arr.type) else np.int32
    offsets = np.frombuffer(arr.buffers()[1], width)[arr.offset : arr.offset + len(arr) + 1].astype(np.int64)
    raw = np.frombuffer(arr.buffers()[2], np.uint8)[offsets[0] : offsets[-1]]
    return raw, offsets - offsets[0]


def word_bytes(data: np.ndarray) -> np.ndarray:
    """Whether each byte belongs to a word character (ASCII by range, other characters by Unicode)."""
    word = (data - np.uint8(ord("a"))) < 26  # the text is lowercased: no ASCII capitals are left
    word |= (data - np.uint8(ord("0"))) < 10
    word |= data == ord("_")
    leads = np.flatnonzero(data >= 0xC0)
    if len(leads) == 0:
        return word
    codepoints, width = decode_utf8(data, leads)
    distinct, inverse = np.unique(codepoints, return_inverse=True)
    # One Python call per distinct non-ASCII character (not per document): Python's own \w definition.
    is_word = np.array([chr(c).isalnum() for c in distinct.tolist()], dtype=bool)[inverse]
    for k in range(4):  # a character's continuation bytes take the class of its lead byte
        has = width > k
        word[leads[has] + k] = is_word[has]
    return word


def decode_utf8(data: np.ndarray, leads: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Code points and byte widths of the multi-byte UTF-8 characters at `leads` (the text is valid UTF-8)."""
    padded = np.concatenate([data, np.zeros(3, np.uint8)])
    b0, b1, b2, b3 = (padded[leads + k].astype(np.uint32) for k in range(4))
    width = np.where(b0 < 0xE0, 2, np.where(b0 < 0xF0, 3, 4))
    two = ((b0 & 0x1F) << 6) | (b1 & 0x3F)
    three = ((b0 & 0x0F) << 12) | ((b1 & 0x3F) << 6) | (b2 & 0x3F)
    four = ((b0 & 0x07) << 18) | ((b1 & 0x3F) << 12) | ((b2 & 0x3F) << 6) | (b3 & 0x3F)
    return np.where(width == 2, two, np.where(width == 3, three, four)), width


def _token_spans(data: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Byte starts and ends of every token, and each document's first token (n+1 offsets)."""
    # Word runs start and end alternately: the data starts outside a word and ends with a space.
    edges = np.flatnonzero(np.diff(word_bytes(data), prepend=False))
    starts, ends = edges.reshape(-1, 2).T.copy()  # contiguous, for the gathers that follow
    return starts, ends, np.searchsorted(starts, offsets)


def token_hashes(data: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """64-bit hash of each token's bytes, 8 bytes a step over all tokens at once (see the module doc)."""
    padded = np.concatenate([data, np.zeros(8, np.uint8)])
    windows = np.ndarray((len(data) + 1,), "<u8", buffer=padded, strides=(1,))  # 8 bytes from each offset
    length = ends - starts
    h = length.astype(np.uint64)
    h ^= windows[starts] & _LOW_BYTES[np.minimum(length, 8)]  # zero the bytes past the token's end
    h *= FNV_PRIME
    rows = np.flatnonzero(length > 8)  # the few tokens longer than 8 bytes take more steps
    at, left = starts[rows] + 8, length[rows] - 8
    while len(rows):
        h[rows] = (h[rows] ^ (windows[at] & _LOW_BYTES[np.minimum(left, 8)])) * FNV_PRIME
        more = left > 8
        rows, at, left = rows[more], at[more] + 8, left[more] - 8
    return fmix64(h)


# --- shingles and signatures ----------------------------------------------------------------------


def fmix64(h: np.ndarray) -> np.ndarray:
    h = h ^ (h >> np.uint64(33))
    h *= np.uint64(0xFF51AFD7ED558CCD)
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xC4CEB9FE1A85EC53)
    h ^= h >> np.uint64(33)
    return h


def _fmix32(h: np.ndarray) -> np.ndarray:
    h = h ^ (h >> np.uint32(16))
    h = h * np.uint32(0x85EBCA6B)
    h ^= h >> np.uint32(13)
    h *= np.uint32(0xC2B2AE35)
    return h ^ (h >> np.uint32(16))


def _shingles(tokens: np.ndarray, token_offsets: np.ndarray, ngram: int) -> tuple[np.ndarray, np.ndarray]:
    """32-bit hashes of every document's shingles, concatenated, and the n+1 shingle offsets."""
    per_doc = np.diff(token_offsets)
    count = np.where(per_doc > 0, np.maximum(per_doc - ngram + 1, 1), 0)
    h = _fold(tokens, ngram)
    short = np.flatnonzero((per_doc > 0) & (per_doc < ngram))
    if len(short):  # a document shorter than ngram is one shingle of all its tokens
        h[token_offsets[short]] = _fold_short(tokens, token_offsets[short], per_doc[short])
    offsets = np.zeros(len(count) + 1, np.int64)
    np.cumsum(count, out=offsets[1:])
    # The shingles of document d start at its first `count[d]` tokens.
    first = np.arange(offsets[-1]) + np.repeat(token_offsets[:-1] - offsets[:-1], count)
    return (fmix64(h[first]) >> np.uint64(32)).astype(np.uint32), offsets


def _fold(tokens: np.ndarray, ngram: int) -> np.ndarray:
    """At every token position, the Horner fold of the `ngram` tokens starting there (clipped at the end)."""
    h = tokens.copy()
    for k in range(1, ngram):
        head = h[: max(len(h) - k, 0)]
        np.multiply(head, SHINGLE_MULTIPLIER, out=head)
        np.add(head, tokens[k:], out=head)
    return h


def _fold_short(tokens: np.ndarray, first: np.ndarray, width: np.ndarray) -> np.ndarray:
    h = np.zeros(len(first), np.uint64)
    for k in range(int(width.max())):
        live = k < width
        h[live] = h[live] * SHINGLE_MULTIPLIER + tokens[first[live] + k]
    return h


@lru_cache(maxsize=16)
def permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(a, b) of the affine permutations, drawn exactly as datasketch 2.0's affine32 scheme draws them."""
    gen = np.random.RandomState(seed)
    a = gen.randint(0, 1 << 31, num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
    b = gen.randint(0, 1 << 32, num_perm, dtype=np.uint32)
    return a, b


def _permute(hashes: np.ndarray, offsets: np.ndarray, num_perm: int, seed: int) -> np.ndarray:
    """Per-document minimum of every permutation over its shingles, in cache-sized blocks of documents; a document
    of more than a block's shingles on its own, block by block (a block holds whole documents: one of 50 MB, 8.5
    million shingles, once made a single block of 4.3 GB)."""
    a, b = permutations(num_perm, seed)
    mixed = _fmix32(hashes)
    widths = np.diff(offsets)
    out = np.full((len(widths), num_perm), EMPTY, np.uint32)
    long = widths > BLOCK_SHINGLES
    for d in np.flatnonzero(long).tolist():
        out[d] = _long_minimum(a, b, mixed[offsets[d] : offsets[d + 1]])
    if long.any():
        mixed = mixed[np.repeat(~long, widths)]  # the other documents' shingles, contiguous
    docs = np.flatnonzero((widths > 0) & ~long)  # reduceat cannot express an empty segment
    lasts = np.cumsum(widths[docs])
    firsts = lasts - widths[docs]
    mins = np.empty((num_perm, len(docs)), np.uint32)
    cuts = np.searchsorted(firsts, np.arange(0, int(lasts[-1]) if len(lasts) else 0, BLOCK_SHINGLES), side="right") - 1
    bounds = np.unique(np.concatenate([cuts[cuts >= 0], [len(docs)]]))
    spans = lasts[bounds[1:] - 1] - firsts[bounds[:-1]]
    buffer = np.empty(num_perm * int(spans.max(initial=0)), np.uint32)  # one buffer for every block
    for lo, hi, width in zip(bounds[:-1].tolist(), bounds[1:].tolist(), spans.tolist(), strict=True):
        block = buffer[: num_perm * width].reshape(num_perm, width)
        np.multiply.outer(a, mixed[firsts[lo] : lasts[hi - 1]], out=block)
        block += b[:, None]
        np.minimum.reduceat(block, firsts[lo:hi] - firsts[lo], axis=1, out=mins[:, lo:hi])
    out[docs] = mins.T
    return out


def _long_minimum(a: np.ndarray, b: np.ndarray, mixed: np.ndarray) -> np.ndarray:
    """One document's minimum of every permutation, over its shingles a block at a time."""
    best = np.full(len(a), EMPTY, np.uint32)
    buffer = np.empty((len(a), BLOCK_SHINGLES), np.uint32)
    for lo in range(0, len(mixed), BLOCK_SHINGLES):
        part = mixed[lo : lo + BLOCK_SHINGLES]
        block = buffer[:, : len(part)]
        np.multiply.outer(a, part, out=block)
        block += b[:, None]
        np.minimum(best, block.min(axis=1), out=best)
    return best


def _arrow(texts: pa.Array | pa.ChunkedArray | Sequence[str | None]) -> pa.Array | pa.ChunkedArray:
    return texts if isinstance(texts, pa.Array | pa.ChunkedArray) else pa.array(texts, pa.string())


def _hash_shingles(texts: pa.Array | pa.ChunkedArray, ngram: int) -> tuple[np.ndarray, np.ndarray]:
    data, offsets = utf8_buffer(texts)
    starts, ends, token_offsets = _token_spans(data, offsets)
    return _shingles(token_hashes(data, starts, ends), token_offsets, ngram)


def shingle_hashes(texts: pa.Array | pa.ChunkedArray | Sequence[str | None], *, ngram: int = 5) -> list[np.ndarray]:
    """Each document's 32-bit shingle hashes (for checks against a reference; signatures() is the fast path)."""
    hashes, offsets = _hash_shingles(_arrow(texts), ngram)
    return np.split(hashes, offsets[1:-1])


def signatures(
    texts: pa.Array | pa.ChunkedArray | Sequence[str | None],
    *,
    ngram: int = 5,
    num_perm: int = 128,
    seed: int = 1,
    threads: int | None = None,
) -> np.ndarray:
    """MinHash signatures, shape (len(texts), num_perm), uint32; see the module doc for the scheme.

    Passes of `DOCS_PER_PASS` documents run in `threads` threads (default `THREADS`; numpy releases the
    GIL in its loops); the result does not depend on it.
    """
    arr = _arrow(texts)
    out = np.empty((len(arr), num_perm), np.uint32)

    def one_pass(lo: int) -> None:
        hashes, offsets = _hash_shingles(arr.slice(lo, DOCS_PER_PASS), ngram)
        out[lo : lo + DOCS_PER_PASS] = _permute(hashes, offsets, num_perm, seed)

    _in_passes(len(arr), one_pass, THREADS if threads is None else threads)
    return out


def _in_passes(n: int, work: Callable[[int], T], threads: int) -> list[T]:
    """`work(lo)` for the passes of `DOCS_PER_PASS` documents starting at lo, in order, in threads."""
    starts = range(0, n, DOCS_PER_PASS)
    if threads <= 1 or len(starts) <= 1:
        return [work(lo) for lo in starts]
    with ThreadPoolExecutor(min(threads, len(starts))) as pool:
        return list(pool.map(work, starts))


# --- LSH matching ---------------------------------------------------------------------------------


def bands(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows) for the threshold by datasketch's own optimisation, weighted 1:99 against misses.

    Every candidate is verified, so a false candidate costs one comparison while a missed one is a missed
    duplicate: datasketch's even weighting (for unverified LSH) finds only 40% of pairs at 0.8.
    """
    return _optimal_bands(threshold, num_perm, LSH_WEIGHTS)


@lru_cache(maxsize=64)
def _optimal_bands(threshold: float, num_perm: int, weights: tuple[float, float]) -> tuple[int, int]:
    """datasketch's `_optimal_param`, computed here: importing it costs ~0.8 s (scipy), two integers do not.

    Over every (b, r) with b * r <= num_perm, minimise fp_weight * (area under 1 - (1 - s^r)^b, the chance
    that a pair of Jaccard s is a candidate, below the threshold) + fn_weight * (area under (1 - s^r)^b above
    it); the first minimum in datasketch's order (b, then r) wins. The integrands are polynomials of degree
    b * r <= num_perm, so Gauss-Legendre with num_perm // 2 + 1 nodes integrates them exactly (datasketch
    uses scipy's `quad`). datasketch's MinHashLSH also refuses b < 2, which we can serve.
    """
    fp_weight, fn_weight = weights
    nodes, node_weights = _gauss_legendre(num_perm // 2 + 1)
    below, above = _mapped(nodes, 0.0, threshold), _mapped(nodes, threshold, 1.0)
    error = np.full((num_perm, num_perm), np.inf)  # [b - 1, r - 1]; inf where b * r > num_perm
    for r in range(1, num_perm + 1):
        count = num_perm // r
        # (1 - s^r)^b for b = 1..count at once, as running products (one power per r, not per (b, r)).
        miss_below = np.cumprod(np.tile(1 - below**r, (count, 1)), axis=0)
        miss_above = np.cumprod(np.tile(1 - above**r, (count, 1)), axis=0)
        fp = (1 - miss_below) @ node_weights * (threshold / 2)
        fn = miss_above @ node_weights * ((1 - threshold) / 2)
        error[:count, r - 1] = fp * fp_weight + fn * fn_weight
    b, r = np.unravel_index(int(np.argmin(error)), error.shape)  # row-major: the first in datasketch's order
    return int(b) + 1, int(r) + 1


def _gauss_legendre(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights of n-point Gauss-Legendre quadrature on [-1, 1], by Newton's method on the roots of
    P_n (numpy's `leggauss` solves an n x n eigenproblem: 1.5 s at n = 513 on a loaded machine, this 5 ms)."""
    x = np.cos(np.pi * (np.arange(1, n + 1) - 0.25) / (n + 0.5))  # close to the roots, in descending order
    for _ in range(100):
        p, prev = x.copy(), np.ones_like(x)  # P_1, P_0
        for k in range(2, n + 1):  # Bonnet's recursion up to P_n, P_(n-1)
            p, prev = ((2 * k - 1) * x * p - (k - 1) * prev) / k, p
        slope = n * (x * p - prev) / (x * x - 1)  # P_n'
        step = p / slope
        x = x - step
        if np.abs(step).max() < 1e-15:
            break
    return x, 2 / ((1 - x * x) * slope * slope)


def _mapped(nodes: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Gauss-Legendre nodes moved from [-1, 1] to [lo, hi]."""
    return (hi - lo) / 2 * nodes + (hi + lo) / 2


def jaccard(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Estimated Jaccard similarity of paired rows: the fraction of equal signature values."""
    return (a == b).mean(axis=1)


def band_keys(sigs: np.ndarray, b: int, r: int) -> np.ndarray:
    """(n, b) 32-bit keys of the bands of these signatures (what `candidate_pairs` groups rows by)."""
    return _band_keys(sigs, b, r)


def pairs_within(keys: np.ndarray) -> np.ndarray:
    """All (i, j), i < j, of rows sharing a key in some band (of `band_keys`)."""
    return _within(keys)


def candidate_bands(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows) that `candidate_pairs` and `candidate_pairs_across` band signatures with."""
    return _optimal_bands(threshold, num_perm, CANDIDATE_WEIGHTS)


def _band_keys(sigs: np.ndarray, b: int, r: int) -> np.ndarray:
    """(n, b) 32-bit keys of the bands; a key collision only adds a candidate that verification drops."""
    h = np.broadcast_to(np.arange(b, dtype=np.uint32), (len(sigs), b)).copy()  # salt: a band's own keys
    for col in range(r):
        h ^= sigs[:, col : b * r : r]
        h *= BAND_MULTIPLIER
    return _fmix32(h)


def _within(keys: np.ndarray) -> np.ndarray:
    """All (i, j), i < j, of rows sharing a key in some band."""
    flat = keys.ravel()
    order = np.argsort(flat)
    ordered = flat[order]
    same = ordered[1:] == ordered[:-1]  # element k + 1 is in the run of element k
    in_run = np.flatnonzero(np.concatenate([same, [False]]) | np.concatenate([[False], same]))  # runs of 2+
    order, ordered = order[in_run], ordered[in_run]
    position = np.arange(len(order))
    new_run = np.concatenate([[True], ordered[1:] != ordered[:-1]])
    start = np.maximum.accumulate(np.where(new_run, position, 0))  # each element's run start, sorted order
    before = position - start  # earlier members of its run: it pairs with each of them
    step = np.arange(before.sum()) - np.repeat(np.cumsum(before) - before, before)
    pairs = np.stack([order[np.repeat(start, before) + step], np.repeat(order, before)], axis=1) // keys.shape[1]
    return _distinct(np.sort(pairs[pairs[:, 0] != pairs[:, 1]], axis=1), len(keys))


def _across(keys_a: np.ndarray, keys_b: np.ndarray) -> np.ndarray:
    """All (i, j) of row i of A and row j of B sharing a key in some band."""
    flat_a, flat_b = keys_a.ravel(), keys_b.ravel()
    order = np.argsort(flat_b)
    sorted_b = flat_b[order]
    lo = np.searchsorted(sorted_b, flat_a, side="left")
    count = np.searchsorted(sorted_b, flat_a, side="right") - lo
    step = np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)
    pairs = np.stack([np.repeat(np.arange(len(flat_a)), count), order[np.repeat(lo, count) + step]], axis=1)
    return _distinct(pairs // keys_a.shape[1], len(keys_b))


def _distinct(pairs: np.ndarray, n: int) -> np.ndarray:
    codes = np.unique(pairs[:, 0].astype(np.int64) * n + pairs[:, 1])
    return np.stack([codes // n, codes % n], axis=1)


def _verify(pairs: np.ndarray, sig_a: np.ndarray, sig_b: np.ndarray, threshold: float) -> np.ndarray:
    """The candidate pairs whose estimated Jaccard reaches the threshold, in blocks to bound memory."""
    keep = np.zeros(len(pairs), dtype=bool)
    for lo in range(0, len(pairs), VERIFY_BLOCK):
        block = pairs[lo : lo + VERIFY_BLOCK]
        keep[lo : lo + VERIFY_BLOCK] = jaccard(sig_a[block[:, 0]], sig_b[block[:, 1]]) >= threshold
    return pairs[keep]


def _nonempty(sigs: np.ndarray) -> np.ndarray:
    return np.flatnonzero((sigs != EMPTY).any(axis=1))


def match(sig_a: np.ndarray, sig_b: np.ndarray, *, threshold: float) -> np.ndarray:
    """(i, j) pairs, row i of sig_a and row j of sig_b, with estimated Jaccard >= threshold (via LSH)."""
    rows_a, rows_b = _nonempty(sig_a), _nonempty(sig_b)
    a, b = sig_a[rows_a], sig_b[rows_b]
    nb, nr = bands(threshold, sig_a.shape[1])
    pairs = _verify(_across(_band_keys(a, nb, nr), _band_keys(b, nb, nr)), a, b, threshold)
    return np.stack([rows_a[pairs[:, 0]], rows_b[pairs[:, 1]]], axis=1)


def lsh_pairs(sigs: np.ndarray, *, threshold: float) -> np.ndarray:
    """Verified near-duplicate pairs (i < j) within one signature matrix.

    Rows with identical signatures are linked as a star (each to the first of them), not all pairs, so
    many copies of one text cost linear time; every verified pair between distinct signatures is given.
    """
    rows = _nonempty(sigs)
    first, inverse = _identical(sigs, rows)
    stars = np.stack([first[inverse], rows], axis=1)
    stars = _verify(stars[stars[:, 0] != stars[:, 1]], sigs, sigs, 1.0)
    distinct = sigs[first]
    nb, nr = bands(threshold, sigs.shape[1])
    pairs = _verify(_within(_band_keys(distinct, nb, nr)), distinct, distinct, threshold)
    return np.sort(np.concatenate([stars, first[pairs]]), axis=1)


def _identical(sigs: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Groups of these rows by a hash of the whole signature: each group's first row (ascending), each row's group."""
    h = signature_hashes(sigs)[rows]
    _, first, inverse = np.unique(h, return_index=True, return_inverse=True)
    order = np.argsort(first)  # groups by their first row, so `first` is ascending
    group = np.empty_like(order)
    group[order] = np.arange(len(order))
    return rows[first[order]], group[inverse.reshape(-1)]


def signature_hashes(sigs: np.ndarray) -> np.ndarray:
    """A 64-bit hash of each whole signature: rows with equal hashes are taken as identical (see `_identical`)."""
    words = np.ascontiguousarray(sigs).view(np.uint64) if sigs.shape[1] % 2 == 0 else sigs
    return words @ _row_multipliers(words.shape[1])  # a matrix product wraps mod 2^64, as a hash may


@lru_cache(maxsize=8)
def _row_multipliers(width: int) -> np.ndarray:
    return np.random.RandomState(width).randint(0, 1 << 63, width, dtype=np.uint64) * np.uint64(2) + np.uint64(1)


def candidate_pairs(sigs: np.ndarray, *, threshold: float) -> np.ndarray:
    """Candidate near-duplicate pairs (i < j, distinct, ascending) within one signature matrix, unverified.

    Bands are chosen for recall, weighted 1:999 against misses (21 bands of 6 values for 128 values at
    0.8: a pair of Jaccard 0.8 is a candidate with probability 0.998), as `verify_exact` removes the false
    candidates. Rows with identical signatures are linked as a star (each to the first of them), not all
    pairs, so many copies of one text cost linear time. Rows without shingles are in no pair.
    """
    rows = _nonempty(sigs)
    first, inverse = _identical(sigs, rows)
    stars = np.stack([first[inverse], rows], axis=1)
    nb, nr = _optimal_bands(threshold, sigs.shape[1], CANDIDATE_WEIGHTS)
    banded = first[_within(_band_keys(sigs, nb, nr)[first])]  # `first` ascending: banded pairs are i < j
    return _distinct(np.concatenate([stars[stars[:, 0] != stars[:, 1]], banded]), len(sigs))


def candidate_pairs_across(sig_a: np.ndarray, sig_b: np.ndarray, *, threshold: float) -> np.ndarray:
    """Candidate pairs (i, j), row i of sig_a and row j of sig_b, banded as `candidate_pairs` bands, unverified.

    The band keys of `sig_b` are sorted and those of `sig_a` looked up in them: make `sig_b` the smaller.
    """
    rows_a, rows_b = _nonempty(sig_a), _nonempty(sig_b)
    nb, nr = _optimal_bands(threshold, sig_a.shape[1], CANDIDATE_WEIGHTS)
    keys_a, keys_b = _band_keys(sig_a[rows_a], nb, nr), _band_keys(sig_b[rows_b], nb, nr)
    # Few rows of a large A share a key with B: find them with one sort-based membership test first.
    hit = np.isin(keys_a, keys_b).any(axis=1)
    rows_a, keys_a = rows_a[hit], keys_a[hit]
    pairs = _across(keys_a, keys_b)
    return np.stack([rows_a[pairs[:, 0]], rows_b[pairs[:, 1]]], axis=1)


# --- exact verification ---------------------------------------------------------------------------


def verify_exact(
    pairs: np.ndarray,
    texts: pa.Array | pa.ChunkedArray | Sequence[str | None],
    other: pa.Array | pa.ChunkedArray | Sequence[str | None] | None = None,
    *,
    ngram: int = 5,
    threshold: float,
) -> tuple[np.ndarray, np.ndarray]:
    """The pairs (i, j) whose exact Jaccard similarity reaches the threshold, in their order, and its value.

    i is a row of `texts`, j a row of `other` (default: `texts` too). The similarity is that of the two
    documents' sets of distinct shingle hashes (`shingle_hashes`), so it equals the Jaccard of their word
    n-gram sets barring 32-bit hash collisions; it is 0 for a document without shingles. Only the texts
    of rows in `pairs` are hashed. `threshold=0` gives the similarity of every pair.
    """
    pairs = np.asarray(pairs, np.int64).reshape(-1, 2)
    if other is None:
        sets_a = sets_b = _ShingleSets.of(texts, pairs.ravel(), ngram)
    else:
        sets_a, sets_b = _ShingleSets.of(texts, pairs[:, 0], ngram), _ShingleSets.of(other, pairs[:, 1], ngram)
    similarity = _exact_jaccard(sets_a, pairs[:, 0], sets_b, pairs[:, 1])
    keep = similarity >= threshold
    return pairs[keep], similarity[keep]


@dataclass(frozen=True)
class _ShingleSets:
    """Distinct shingle hashes of some rows: keys `position << 32 | hash`, ascending; offsets by position."""

    rows: np.ndarray  # ascending
    keys: np.ndarray
    offsets: np.ndarray

    @classmethod
    def of(cls, texts: pa.Array | pa.ChunkedArray | Sequence[str | None], rows: np.ndarray, ngram: int) -> _ShingleSets:
        rows = np.unique(rows)
        arr = _arrow(texts).take(pa.array(rows))

        def one_pass(lo: int) -> np.ndarray:
            hashes, offsets = _hash_shingles(arr.slice(lo, DOCS_PER_PASS), ngram)
            position = np.repeat(np.arange(lo, lo + len(offsets) - 1, dtype=np.uint64), np.diff(offsets))
            keys = np.sort((position << np.uint64(32)) | hashes)
            distinct = np.ones(len(keys), bool)
            np.not_equal(keys[1:], keys[:-1], out=distinct[1:])
            return keys[distinct]

        keys = np.concatenate([np.zeros(0, np.uint64), *_in_passes(len(rows), one_pass, THREADS)])
        return cls(rows, keys, np.searchsorted(keys, np.arange(len(rows) + 1, dtype=np.uint64) << np.uint64(32)))


def _exact_jaccard(a: _ShingleSets, rows_a: np.ndarray, b: _ShingleSets, rows_b: np.ndarray) -> np.ndarray:
    """|A & B| / |A | B| of each pair: each hash of A looked up among B's, in blocks to bound memory."""
    at_a, at_b = np.searchsorted(a.rows, rows_a), np.searchsorted(b.rows, rows_b)
    size_a, size_b = np.diff(a.offsets)[at_a], np.diff(b.offsets)[at_b]
    common = np.zeros(len(at_a), np.int64)
    starts = np.cumsum(size_a) - size_a
    bounds = np.unique(np.searchsorted(starts, np.arange(0, starts[-1] + 1 if len(starts) else 0, VERIFY_SHINGLES)))
    for lo, hi in pairwise([*bounds.tolist(), len(at_a)]):
        sizes = size_a[lo:hi]
        if len(b.keys) == 0 or not sizes.any():
            continue
        pair = np.repeat(np.arange(hi - lo), sizes)
        at = np.arange(len(pair)) + np.repeat(a.offsets[at_a[lo:hi]] - (starts[lo:hi] - starts[lo]), sizes)
        query = (a.keys[at] & np.uint64(0xFFFFFFFF)) | (at_b[lo:hi].astype(np.uint64) << np.uint64(32))[pair]
        found = b.keys[np.minimum(np.searchsorted(b.keys, query), len(b.keys) - 1)] == query
        common[lo:hi] = np.bincount(pair, weights=found, minlength=hi - lo).astype(np.int64)
    union = size_a + size_b - common
    return np.where(union > 0, common / np.maximum(union, 1), 0.0)


def clusters(n: int, pairs: np.ndarray) -> np.ndarray:
    """A cluster label per row: the connected components of the pairs, numbered 0.. in order of their lowest row
    (as scipy's `connected_components` numbers them; numpy here, as scipy.sparse costs ~0.25 s to import).

    Union-find in whole-array steps: every row points at a lower row of its cluster or at itself (a root); each
    step hooks the higher root of every pair that spans two trees under the lower one, then jumps pointers until
    every row points at its root. Roots only ever move down, so it ends, with each cluster's lowest row as root.
    """
    parent = np.arange(n)
    u, v = np.asarray(pairs, np.int64).reshape(-1, 2).T
    while True:
        ru, rv = parent[u], parent[v]
        split = ru != rv
        if not split.any():
            break
        np.minimum.at(parent, np.maximum(ru, rv)[split], np.minimum(ru, rv)[split])
        while not ((jumped := parent[parent]) == parent).all():
            parent = jumped
    return np.unique(parent, return_inverse=True)[1].reshape(n)
