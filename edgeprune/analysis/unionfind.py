"""Union-find over integer ids, grown on demand (the analysis allocates ids as it walks the graph)."""

from __future__ import annotations

import numpy as np


class UnionFind:
    def __init__(self) -> None:
        self._parent: list[int] = []

    def __len__(self) -> int:
        return len(self._parent)

    def allocate(self, count: int) -> np.ndarray:
        start = len(self._parent)
        self._parent.extend(range(start, start + count))
        return np.arange(start, start + count, dtype=np.int64)

    def find(self, item: int) -> int:
        parent = self._parent
        root = item
        while parent[root] != root:
            root = parent[root]
        while parent[item] != root:
            parent[item], item = root, parent[item]
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            # the smaller id stays the root, so roots follow topological order
            self._parent[max(ra, rb)] = min(ra, rb)

    def roots(self) -> np.ndarray:
        return np.fromiter((self.find(i) for i in range(len(self._parent))), dtype=np.int64, count=len(self))
