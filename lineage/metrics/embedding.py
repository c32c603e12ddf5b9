"""Diversity of embeddings: pure functions over matrices with one row per text.

Dispersion and Vendi use the cosine kernel, so they L2-normalise rows themselves (a zero row stays zero);
Fréchet takes the vectors as given (lineage's embedder returns them normalised). A value that is
undefined on its input (fewer than two rows) is None.
"""

from __future__ import annotations

import numpy as np


def normalise(vectors: np.ndarray) -> np.ndarray:
    x = np.asarray(vectors, dtype=np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


def dispersion(vectors: np.ndarray) -> float | None:
    """Mean pairwise cosine distance: 1 - mean over pairs i != j of cos(x_i, x_j).

    The sum over all ordered pairs is |sum_i x_i|^2 - sum_i |x_i|^2 for unit rows, so no n x n matrix.
    0 for identical rows, 1 for orthogonal ones.
    """
    x = normalise(vectors)
    n = len(x)
    if n < 2:
        return None
    total = x.sum(axis=0)
    pairs = float(total @ total) - float(np.einsum("ij,ij->", x, x))
    return 1.0 - pairs / (n * (n - 1))


def vendi_score(vectors: np.ndarray) -> float | None:
    """Vendi score (Friedman & Dieng 2023) with the cosine kernel: exp(-sum_i l_i ln l_i).

    l_i are the eigenvalues of K / n, K = X X^T (n x n). X^T X / n (d x d) has the same non-zero
    eigenvalues, so the smaller of the two is decomposed. 1 for n identical rows, n for n orthogonal ones:
    the effective number of distinct items.
    """
    from scipy.linalg import eigvalsh

    x = normalise(vectors)
    n, d = x.shape
    if n == 0:
        return None
    kernel = x @ x.T if n <= d else x.T @ x
    eigenvalues = np.clip(eigvalsh(kernel / n), 0.0, None)
    nonzero = eigenvalues[eigenvalues > 1e-12]
    return float(np.exp(-np.sum(nonzero * np.log(nonzero))))


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float | None:
    """Fréchet distance between Gaussians fitted to two sets of rows (as FID, on text embeddings).

    d^2 = |mu_a - mu_b|^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)), S the sample covariances. The trace of the
    matrix square root is sum_i sqrt(l_i), l_i the eigenvalues of S_a^(1/2) S_b S_a^(1/2) (the same as
    those of S_a S_b, and real and non-negative because that matrix is symmetric PSD): two symmetric
    eigendecompositions instead of `scipy.linalg.sqrtm` of a non-symmetric product, which takes seconds
    at d = 384; tests check the two agree. 0 for identical sets.
    """
    from scipy.linalg import eigh, eigvalsh

    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if len(x) < 2 or len(y) < 2:
        return None
    mean = x.mean(axis=0) - y.mean(axis=0)
    sa, sb = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    w, v = eigh(sa)
    root_a = (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T
    cross = np.sqrt(np.clip(eigvalsh(root_a @ sb @ root_a), 0.0, None)).sum()
    return max(float(mean @ mean + np.trace(sa) + np.trace(sb) - 2.0 * cross), 0.0)
