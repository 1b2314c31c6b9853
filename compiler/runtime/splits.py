"""Seeded splits that do not depend on threads, batch sizes or memory.

A split is a pseudo-random permutation of the row numbers 0..n-1, cut into consecutive ranges
of exact sizes (largest remainder, so the counts sum to n). Row i goes to the split whose range
holds perm(i). perm is a 4-round Feistel network keyed by the seed over the smallest even
power-of-two domain >= n, with cycle walking back into [0, n): a bijection computed for each
row number alone, so rows can stream through in batches of any size and memory stays constant.
Every step is numpy uint64 arithmetic (wrapping), the same on every machine and version — a
library's hash function can change between releases, which would silently move rows between
train and test.
"""

from __future__ import annotations

from typing import Any

ROUNDS = 4
_MASK64 = (1 << 64) - 1


def _splitmix(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def split_counts(n: int, fractions: dict[str, float]) -> dict[str, int]:
    """Exact sizes: floor of each share, the remainder to the largest fractional parts."""
    exact = [(name, frac * n) for name, frac in fractions.items()]
    counts = {name: int(x) for name, x in exact}
    rest = n - sum(counts.values())
    by_remainder = sorted(range(len(exact)), key=lambda i: (-(exact[i][1] - int(exact[i][1])), i))
    for i in by_remainder[:rest]:
        counts[exact[i][0]] += 1
    return counts


class Permutation:
    def __init__(self, n: int, seed: int):
        self.n = n
        bits = max(2, (max(n, 2) - 1).bit_length())
        self.half = (bits + 1) // 2
        keys, k = [], seed & _MASK64
        for _ in range(ROUNDS):
            k = _splitmix(k)
            keys.append(k)
        self.keys = keys

    def _round(self, r: Any, key: int) -> Any:
        import numpy as np

        x = r ^ np.uint64(key)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return (x ^ (x >> np.uint64(31))) & np.uint64((1 << self.half) - 1)

    def _encrypt(self, x: Any) -> Any:
        import numpy as np

        h = np.uint64(self.half)
        mask = np.uint64((1 << self.half) - 1)
        left, right = x >> h, x & mask
        for key in self.keys:
            left, right = right, left ^ self._round(right, key)
        return (left << h) | right

    def __call__(self, index: Any) -> Any:
        """perm(i) for an array of row numbers (each < n)."""
        import numpy as np

        with np.errstate(over="ignore"):
            out = self._encrypt(index.astype(np.uint64))
            n = np.uint64(self.n)
            outside = out >= n
            while outside.any():  # cycle walking: re-encrypt until back inside [0, n)
                out[outside] = self._encrypt(out[outside])
                outside = out >= n
        return out


def assign(perm: Permutation, start: int, rows: int, bounds: Any) -> Any:
    """Split number of rows start..start+rows-1 (bounds: cumulative split sizes)."""
    import numpy as np

    positions = perm(np.arange(start, start + rows, dtype=np.uint64))
    return np.searchsorted(bounds, positions, side="right")
