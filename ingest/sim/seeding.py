"""Named, independent random streams derived from the run seed.

Every component draws from its own stream (`rng_for(seed, "fleet")`, `rng_for(seed, "chunk", 7)`), so adding
a draw to one component never shifts another's numbers, and one seed always reproduces the whole run.
"""

from __future__ import annotations

import zlib

import numpy as np


def rng_for(seed: int, *keys: str | int) -> np.random.Generator:
    words = [seed & 0xFFFFFFFF, (seed >> 32) & 0xFFFFFFFF]
    for key in keys:
        words.append(zlib.crc32(key.encode()) if isinstance(key, str) else int(key))
    return np.random.default_rng(np.random.SeedSequence(words))


def lognormal(rng: np.random.Generator, median: float, sigma: float, size: int | tuple[int, ...]) -> np.ndarray:
    """Lognormal draws parameterised by their median, the way field studies report skewed rates."""
    return median * np.exp(sigma * rng.standard_normal(size))


def sparse_poisson(rng: np.random.Generator, expected: np.ndarray, dense_above: float = 0.05) -> np.ndarray:
    """Exact Poisson counts, cheap when most rates are tiny: the tiny cells' events are drawn as one Poisson
    total scattered in proportion to the rates (the same law as independent draws), the rest directly."""
    counts = np.zeros(expected.shape, np.int64)
    flat_expected, flat_counts = expected.ravel(), counts.ravel()
    dense = flat_expected > dense_above
    flat_counts[dense] = rng.poisson(flat_expected[dense])
    tiny = np.flatnonzero(~dense)
    cumulative = np.cumsum(flat_expected[tiny])
    total = cumulative[-1] if cumulative.size else 0.0
    hits = rng.poisson(total)
    if hits:
        cells = tiny[np.minimum(np.searchsorted(cumulative, rng.random(hits) * total, side="right"), tiny.size - 1)]
        np.add.at(flat_counts, cells, 1)
    return counts
