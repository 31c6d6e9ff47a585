"""The pruning environment of the RL search: state per group, the budget wall, and episode -> plan.

Pure: no I/O and no model runs. An episode walks the prunable groups in order; at each step the agent
proposes a preserve ratio, the wall clips it so the budget stays reachable (every later group at its lowest
ratio must still meet it), and the group keeps its best channels by the per-channel criterion. Budgets are
tested only through `Selector.meets`, so any budget kind the selector knows (MACs, params, latency) walls
the search the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np
from onnx.helper import get_attribute_value

from edgeprune.analysis.groups import ChannelGroup
from edgeprune.errors import InputError
from edgeprune.selection.counts import top_channels, valid_count
from edgeprune.selection.selector import Kept, Selector

STATIC_FEATURES = ("index", "kind", "in_channels", "channels", "stride", "kernel", "spatial", "macs")
DYNAMIC_FEATURES = ("reduced", "rest", "previous")
_KINDS = {"Conv": 0.0, "depthwise": 1.0, "Gemm": 2.0, "MatMul": 2.0}

logger = logging.getLogger(__name__)


class PruningEnvironment:
    """One model and budget; :meth:`episode` starts a walk over the prunable groups."""

    def __init__(
        self,
        model,
        selector: Selector,
        scores: Mapping[str, np.ndarray],
        min_ratio: float = 0.2,
        max_ratio: float = 1.0,
        spend_budget: bool = True,
    ) -> None:
        self.selector, self.min_ratio, self.max_ratio, self.spend_budget = selector, min_ratio, max_ratio, spend_budget
        self.groups: tuple[ChannelGroup, ...] = selector.analysis.prunable_groups
        budget = selector.budget
        self.counts = [selector.counts(g) for g in self.groups]
        self._scores = scores
        self._kept_cache: dict[tuple[int, int], tuple[int, ...]] = {}
        self.lowest = [self._count(i, min_ratio) for i in range(len(self.groups))]
        relaxed = budget.floor < selector.requested.floor and min_ratio <= selector.requested.floor
        if relaxed and min_ratio > budget.floor and not selector.meets(self.plan(self.lowest)):
            # the selector lowered the default floor for the budget below the agent's lowest ratio: follow it
            logger.info("rl: lowest keep ratio %.0f%% -> the floor, %.0f%%", 100 * min_ratio, 100 * budget.floor)
            self.min_ratio = budget.floor
            self.lowest = [self._count(i, budget.floor) for i in range(len(self.groups))]
        costs = selector.costs
        self.full_macs = max(selector.full.macs, 1)
        group_macs = []
        for group in self.groups:
            keep = np.ones(len(selector.analysis.class_group), dtype=bool)
            keep[selector.analysis.members(group.id)] = False
            group_macs.append(self.full_macs - costs.cost(keep).macs)
        self.group_macs = np.array(group_macs, dtype=np.float64) / self.full_macs
        self.static = _normalise(
            np.array([_static_row(model, g, i, m) for i, (g, m) in enumerate(zip(self.groups, self.group_macs))])
        )
        if not selector.meets(self.plan(self.lowest)):
            raise InputError(
                f"the budget ({budget.describe()}) cannot be met by the rl search's wall: even with every group at "
                f"its lowest keep ratio ({min_ratio:.0%}, floor {budget.floor:.0%}) the plan is over it; "
                "lower min_ratio (--rl-set min_ratio=0.1) or --floor, or ask for less"
            )

    @property
    def state_size(self) -> int:
        return len(STATIC_FEATURES) + len(DYNAMIC_FEATURES)

    def _count(self, index: int, ratio: float) -> int:
        group = self.groups[index]
        budget = self.selector.budget
        return valid_count(group, ratio * group.channels, budget.floor, budget.alignment, budget.fine)

    def kept(self, index: int, count: int) -> tuple[int, ...]:
        """The ``count`` best channels of group ``index`` by the criterion (cached: the order never changes)."""
        key = (index, count)
        if key not in self._kept_cache:
            group = self.groups[index]
            self._kept_cache[key] = top_channels(group, self._scores[group.id], count)
        return self._kept_cache[key]

    def plan(self, counts) -> Kept:
        """The plan that keeps ``counts[i]`` channels of group i (a group at its full width is left out)."""
        return {g.id: self.kept(i, int(c)) for i, (g, c) in enumerate(zip(self.groups, counts)) if c < g.channels}

    def episode(self) -> Episode:
        return Episode(self)


class Episode:
    """One walk over the groups. ``state()`` before each ``step(ratio)``; ``plan()`` when ``done``."""

    def __init__(self, env: PruningEnvironment) -> None:
        self.env = env
        self.counts: list[int] = []
        self.actions: list[float] = []

    @property
    def done(self) -> bool:
        return len(self.counts) == len(self.env.groups)

    def state(self) -> np.ndarray:
        env, t = self.env, len(self.counts)
        decided = self.counts + [g.channels for g in env.groups[t:]]
        reduced = 1.0 - env.selector.costs.cost_of_plan(env.plan(decided)).macs / env.full_macs
        rest = float(env.group_macs[t + 1 :].sum())
        previous = self.actions[-1] if self.actions else 1.0
        return np.concatenate([env.static[t], [reduced, rest, previous]]).astype(np.float32)

    def step(self, ratio: float) -> float:
        """Apply the agent's preserve ratio to the next group through the wall; return the ratio taken."""
        env, t = self.env, len(self.counts)
        ratio = float(np.clip(ratio, env.min_ratio, env.max_ratio))
        count = max(env._count(t, ratio), env.lowest[t])
        count = self._wall(t, count)
        self.counts.append(count)
        taken = count / env.groups[t].channels
        self.actions.append(taken)
        return taken

    def _wall(self, t: int, count: int) -> int:
        """Clip ``count`` to [spend bound, reach bound]: the largest count that still lets the later groups,
        all at their lowest, meet the budget; and (``spend_budget``) not so low that the later groups, all
        kept whole, would leave the budget unspent."""
        env = self.env
        options = [c for c in env.counts[t] if c >= env.lowest[t]]
        later_low = env.lowest[t + 1 :]
        later_full = [g.channels for g in env.groups[t + 1 :]]

        def meets(c: int, later) -> bool:
            return env.selector.meets(env.plan(self.counts + [c] + list(later)))

        if not meets(count, later_low):
            return _last_true(options, lambda c: c < count and meets(c, later_low))
        if env.spend_budget:
            above = [c for c in options if c > count]
            if above and meets(above[0], later_full):
                return _last_true(above, lambda c: meets(c, later_full))
        return count

    def plan(self) -> Kept:
        return self.env.plan(self.counts)


def _last_true(options: list[int], test) -> int:
    """The largest option passing ``test`` (a prefix of ``options`` passes), else the smallest option."""
    low, high, best = 0, len(options) - 1, options[0]
    while low <= high:
        middle = (low + high) // 2
        if test(options[middle]):
            best, low = options[middle], middle + 1
        else:
            high = middle - 1
    return best


def _static_row(model, group: ChannelGroup, index: int, macs: float) -> list[float]:
    """index, kind, in channels, channels, stride, kernel, output sites, MACs share of the group's first producer."""
    node = next((n for n in model.proto.graph.node if group.producers and n.name == group.producers[0]), None)
    kind, c_in, stride, kernel, spatial = 3.0, 0.0, 1.0, 1.0, 1.0
    if node is not None:
        weights = {t.name: t for t in model.proto.graph.initializer}
        shape = tuple(weights[node.input[1]].dims) if len(node.input) > 1 and node.input[1] in weights else ()
        attrs = {a.name: get_attribute_value(a) for a in node.attribute}
        out_shape = model.shapes.get(node.output[0], ())
        if node.op_type == "Conv" and len(shape) >= 3:
            groups = int(attrs.get("group", 1))
            kind = _KINDS["depthwise"] if groups > 1 and groups == shape[0] else _KINDS["Conv"]
            c_in, kernel = float(shape[1] * groups), float(shape[2])
            stride = float(list(attrs.get("strides", [1]))[0])
            spatial = float(np.prod([d for d in out_shape[2:] if isinstance(d, int)] or [1]))
        elif node.op_type in _KINDS and len(shape) == 2:
            kind = _KINDS[node.op_type]
            c_in = float(shape[1] if node.op_type == "Gemm" and attrs.get("transB", 0) else shape[0])
    return [float(index), kind, c_in, float(group.channels), stride, kernel, spatial, float(macs)]


def _normalise(rows: np.ndarray) -> np.ndarray:
    """Each feature to [0, 1] over the groups (a constant feature becomes 0), as AMC scales its state."""
    low, high = rows.min(axis=0), rows.max(axis=0)
    return (rows - low) / np.where(high > low, high - low, 1.0)
