"""A word-level bigram language model with interpolated Witten-Bell smoothing, in numpy.

Small and fast on a CPU, and enough to reproduce model collapse: trained on its own samples, generation
after generation, it forgets the rare words of the real data and its held-out cross-entropy rises.

    P(w | v) = (c(v, w) + T(v) * P1(w)) / (c(v) + T(v))        P1(w) = (c(w) + a) / (N + a * |V|)

c(v, w) bigram counts, c(v) = sum_w c(v, w), T(v) the number of distinct successors of v, a = ALPHA.
The vocabulary is fixed by the real data, so every generation's model scores the same events.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

BOS, EOS = "<s>", "</s>"
ALPHA = 0.01
MAX_TOKENS = 40
_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?|[^\sa-z0-9]")
_SPACE_BEFORE = re.compile(r" ([,.;:!?)])")  # detokenised: no space before closing punctuation


def tokenize(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


class Vocabulary:
    def __init__(self, words: Iterable[str]) -> None:
        self.words = [BOS, EOS, *sorted(set(words) - {BOS, EOS})]
        self.index = {w: i for i, w in enumerate(self.words)}

    def __len__(self) -> int:
        return len(self.words)

    def encode(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Bigram (prev, next) id arrays over all texts, each framed by <s> ... </s>; unknown words dropped."""
        prev: list[int] = []
        nxt: list[int] = []
        for text in texts:
            ids = [0, *(self.index[t] for t in tokenize(text) if t in self.index), 1]
            prev.extend(ids[:-1])
            nxt.extend(ids[1:])
        return np.asarray(prev, np.int64), np.asarray(nxt, np.int64)


@dataclass
class BigramLM:
    vocab: Vocabulary
    keys: np.ndarray  # sorted prev * V + next of the seen bigrams
    cum: np.ndarray  # cumulative bigram counts in key order
    context: np.ndarray  # c(v)
    types: np.ndarray  # T(v)
    unigram: np.ndarray  # P1(w)

    @classmethod
    def train(cls, vocab: Vocabulary, texts: Sequence[str]) -> BigramLM:
        prev, nxt = vocab.encode(texts)
        size = len(vocab)
        keys, counts = np.unique(prev * size + nxt, return_counts=True)
        context = np.bincount(keys // size, weights=counts, minlength=size)
        types = np.bincount(keys // size, minlength=size).astype(float)
        word_counts = np.bincount(nxt, minlength=size).astype(float)
        word_counts[0] = 0.0  # <s> is never predicted
        unigram = (word_counts + ALPHA) / (word_counts.sum() + ALPHA * size)
        unigram[0] = 0.0
        unigram /= unigram.sum()
        return cls(vocab, keys, np.cumsum(counts), context, types, unigram)

    def _pair_counts(self, keys: np.ndarray) -> np.ndarray:
        # searchsorted returns len(self.keys) for a key past the last seen bigram: clamp before indexing,
        # since np.where evaluates both branches (the count of an unseen pair is 0 either way).
        pos = np.minimum(np.searchsorted(self.keys, keys), len(self.keys) - 1)
        found = self.keys[pos] == keys
        cum = np.concatenate([[0], self.cum])
        return np.where(found, cum[pos + 1] - cum[pos], 0)

    def predict_next(self) -> np.ndarray:
        """The most probable next word after each word: argmax_w of c(v, w) + T(v) * P1(w).

        An unseen successor scores T(v) * P1(w), highest for the unigram's best word, so only that word
        competes with the seen successors of v. Ties go to the lower word id (deterministic).
        """
        size = len(self.vocab)
        best_unigram = int(np.argmax(self.unigram))
        prev, nxt = self.keys // size, self.keys % size
        counts = np.diff(np.concatenate([[0], self.cum]))
        score = counts + self.types[prev] * self.unigram[nxt]
        order = np.lexsort((-nxt, score, prev))  # per context, the last entry has the top score (lowest id)
        last = order[np.r_[prev[order][1:] != prev[order][:-1], True]]
        pred = np.full(size, best_unigram, np.int64)
        seen_score = np.full(size, -np.inf)
        pred[prev[last]], seen_score[prev[last]] = nxt[last], score[last]
        unseen_wins = self.types * self.unigram[best_unigram] > seen_score
        pred[unseen_wins] = best_unigram
        return pred

    def accuracy(self, texts: Sequence[str]) -> float:
        """Next-word top-1 accuracy on `texts` (each position predicted from the word before it)."""
        prev, nxt = self.vocab.encode(texts)
        return float((self.predict_next()[prev] == nxt).mean()) if len(prev) else 0.0

    def cross_entropy(self, texts: Sequence[str]) -> float:
        """Mean bits per token on `texts` (words outside the vocabulary are skipped by encode)."""
        prev, nxt = self.vocab.encode(texts)
        pair = self._pair_counts(prev * len(self.vocab) + nxt)
        c, t = self.context[prev], self.types[prev]
        prob = (pair + t * self.unigram[nxt]) / np.maximum(c + t, 1e-12)
        prob = np.where(c + t > 0, prob, self.unigram[nxt])
        return float(-np.log2(prob).mean())

    def sample(self, n: int, rng: np.random.Generator) -> list[str]:
        """n sentences, generated in parallel one token position at a time."""
        size = len(self.vocab)
        current = np.zeros(n, np.int64)
        out = np.full((n, MAX_TOKENS), 1, np.int64)
        alive = np.ones(n, bool)
        starts = np.concatenate([[0], self.cum])[np.searchsorted(self.keys, np.arange(size) * size)]
        uni_cum = np.cumsum(self.unigram)
        for step in range(MAX_TOKENS):
            c, t = self.context[current], self.types[current]
            from_pairs = rng.random(n) * (c + t) < c
            draw = starts[current] + rng.random(n) * c
            pair_next = self.keys[np.minimum(np.searchsorted(self.cum, draw, side="right"), len(self.keys) - 1)] % size
            uni_next = np.minimum(np.searchsorted(uni_cum, rng.random(n) * uni_cum[-1], side="right"), size - 1)
            current = np.where(from_pairs, pair_next, uni_next)
            out[alive, step] = current[alive]
            alive &= current != 1
            if not alive.any():
                break
        return [self._detokenize(row) for row in out.tolist()]

    def _detokenize(self, row: list[int]) -> str:
        words = self.vocab.words
        text = " ".join([words[i] for i in row[: row.index(1) if 1 in row else None]])
        return _SPACE_BEFORE.sub(r"\1", text).replace("( ", "(")
