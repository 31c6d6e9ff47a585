"""`--strategy knapsack`: how many channels each group keeps, as a multiple-choice knapsack (HALP, adapted;
docs/methods.md#8-allocation-as-a-knapsack-halp-neurips-2022-adapted).

For every group and every count it may keep (its floor and alignment steps), a loss: what the refit of its
consumers loses with only that many channels. The `refit-error` scores give the whole curve at once, since
a channel's score is the group's refit loss once the greedy removal has taken it (scores rise along the
removal order), so the loss of keeping a set is the largest score among the channels it drops. And a cost:
the share of the budget the plan spends (`Selector.usage`: MACs, params or the device's predicted latency).
One count per group is chosen to minimise the summed loss within the budget, exactly for costs cut into
``resolution`` bins (`mckp.solve`).

Costs are not separable: a conv's MACs are the product of its input and output counts, a latency layer's
a function of both. So each pass prices every count of every group with the others where the last pass
left them (the exact cost of changing that group alone), solves the knapsack on those curves, and moves
there; the passes start from the uniform plan at the budget and stop when a solution repeats. A last greedy
step prices plans exactly: it removes channels while the plan is over the budget, then adds back, one
step of one group at a time, the cheapest loss per cost that still fits, so the plan meets the budget and
no single step more would. Deterministic: no random choice, ties to the lower group and count.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from edgeprune.errors import InputError
from edgeprune.selection.counts import top_channels
from edgeprune.selection.mckp import solve
from edgeprune.selection.selector import Kept, Selector


@dataclass(frozen=True)
class _Options:
    """One group's choices: allowed counts, the channels kept at each, the loss of each."""

    members: np.ndarray  # the group's global channel classes
    counts: tuple[int, ...]
    keeps: tuple[np.ndarray, ...]  # per count, a boolean over the group's channels
    kept: tuple[tuple[int, ...], ...]
    losses: np.ndarray


def loss_curve(scores: np.ndarray, kept: tuple[tuple[int, ...], ...]) -> np.ndarray:
    """Per kept set, the refit loss the `refit-error` scores give it: the largest score it drops (0: none)."""
    losses = []
    for channels in kept:
        dropped = np.ones(len(scores), dtype=bool)
        dropped[list(channels)] = False
        losses.append(float(scores[dropped].max()) if dropped.any() else 0.0)
    return np.asarray(losses)


class _Problem:
    def __init__(self, selector: Selector, scores: Mapping[str, np.ndarray]) -> None:
        self.selector = selector
        analysis = selector.analysis
        self.options = []
        for group in analysis.prunable_groups:
            counts = tuple(selector.counts(group))
            kept = tuple(top_channels(group, scores[group.id], c) for c in counts)
            keeps = []
            for channels in kept:
                keep = np.zeros(group.channels, dtype=bool)
                keep[list(channels)] = True
                keeps.append(keep)
            losses = loss_curve(np.asarray(scores[group.id], dtype=np.float64), kept)
            self.options.append(_Options(analysis.members(group.id), counts, tuple(keeps), kept, losses))
        self.groups = analysis.prunable_groups
        self.size = len(analysis.class_group)

    def mask(self, choice) -> np.ndarray:
        keep = np.ones(self.size, dtype=bool)
        for option, index in zip(self.options, choice):
            keep[option.members] = option.keeps[index]
        return keep

    def usage(self, choice) -> float:
        return self.selector.usage(self.mask(choice))

    def loss(self, choice) -> float:
        return float(sum(option.losses[index] for option, index in zip(self.options, choice)))

    def plan(self, choice) -> Kept:
        return {
            g.id: option.kept[index]
            for g, option, index in zip(self.groups, self.options, choice)
            if option.counts[index] < g.channels
        }

    def meets(self, choice) -> bool:
        return self.selector.meets(self.plan(choice))

    def curves(self, choice, probes: int) -> list[np.ndarray]:
        """Per group, the usage of the plan with that group at each of its counts and the others at ``choice``:
        priced exactly at ``probes`` counts spread over its range (and its own), linear in between (MACs and
        params are at most quadratic in one group's count, so a group of thousands of channels needs no more)."""
        base = self.mask(choice)
        curves = []
        for option, current in zip(self.options, choice):
            keep = base.copy()
            size = len(option.counts)
            priced = sorted(set(np.linspace(0, size - 1, min(probes, size)).round().astype(int).tolist()) | {current})
            values = []
            for index in priced:
                keep[option.members] = option.keeps[index]
                values.append(self.selector.usage(keep))
            curves.append(np.interp(np.arange(size), priced, values))
        return curves

    def uniform(self) -> list[int]:
        """The uniform plan at the budget: the largest common keep ratio whose counts meet it."""
        low, high = 0.0, 1.0
        at = self._at_ratio
        if self.meets(at(1.0)):
            return at(1.0)
        for _ in range(30):
            middle = (low + high) / 2
            low, high = (middle, high) if self.meets(at(middle)) else (low, middle)
        return at(low)

    def _at_ratio(self, ratio: float) -> list[int]:
        choice = []
        for group, option in zip(self.groups, self.options):
            wanted = ratio * group.channels
            choice.append(next((i for i, c in enumerate(option.counts) if c >= wanted - 1e-9), len(option.counts) - 1))
        return choice


def select_knapsack(
    selector: Selector, scores: Mapping[str, np.ndarray], passes: int = 8, resolution: int = 2000, probes: int = 32
):
    """The plan of least summed refit loss within the budget (see the module docstring)."""
    selector.check_reachable(scores)
    problem = _Problem(selector, scores)
    _check_priced(problem)
    choice = problem.uniform()
    seen = {tuple(choice)}
    for _ in range(passes):
        curves = problem.curves(choice, probes)
        base = problem.usage(choice)
        lowest = [float(c.min()) for c in curves]
        costs = [np.maximum(c - low, 0.0) for c, low in zip(curves, lowest)]
        # the separable model: usage ~ base + sum over groups of (curve at the new count - curve at the old)
        capacity = 1.0 - base + sum(c[i] - low for c, i, low in zip(curves, choice, lowest))
        found = solve([o.losses for o in problem.options], costs, capacity, resolution)
        if found is None or tuple(found) in seen:
            if found is not None:
                choice = found
            break
        seen.add(tuple(found))
        choice = found
    return problem.plan(_repair(problem, choice))


def _check_priced(problem: _Problem) -> None:
    """With a latency budget alone, every group must move the prediction: a group whose channels reach no
    layer the device's latency model prices cannot be traded for time, and would silently keep them all."""
    budget = problem.selector.budget
    if not budget.needs_latency or budget.macs is not None or budget.params is not None:
        return
    full = [len(o.counts) - 1 for o in problem.options]
    whole = problem.usage(full)
    profile = getattr(problem.selector.latency, "profile", None)
    step = max(int(getattr(profile, "alignment", 1)), 1)  # the device pads channel counts up to this
    for g, group in enumerate(problem.groups):
        if -(-problem.options[g].counts[0] // step) * step >= group.channels:
            continue  # every allowed count runs as the whole group there: nothing to trade, but priced
        if problem.usage(full[:g] + [0] + full[g + 1 :]) >= whole:
            raise InputError(
                f"the device's latency model prices no layer of group {group.id} (its layers are ops it does not "
                "model, or of unknown shapes), so the knapsack cannot trade its channels for time; give "
                "--target-flops, or a device profile measured with this model"
            )


def _repair(problem: _Problem, choice: list[int]) -> list[int]:
    """Priced exactly: counts step down while the plan is over the budget, then up while a step still fits,
    each time the step of least loss per share of the budget (lazy greedy: a step's rate is priced again only
    when it comes to the top, since the others' hardly move when one group does)."""
    return _greedy(problem, _greedy(problem, list(choice), down=True), down=False)


def _greedy(problem: _Problem, choice: list[int], down: bool) -> list[int]:
    if down and problem.meets(choice):
        return choice
    now = problem.usage(choice)

    def rate(g: int) -> float | None:
        """Loss added per usage saved (down), or minus loss saved per usage spent (up); None: no such step."""
        option, index = problem.options[g], choice[g] + (-1 if down else 1)
        if not 0 <= index < len(option.counts):
            return None
        trial = choice[:g] + [index] + choice[g + 1 :]
        change = problem.usage(trial) - now
        if down:
            return (option.losses[index] - option.losses[choice[g]]) / -change if change < 0 else None
        if not problem.meets(trial):
            return None  # usage only grows as the fill goes on: this step never fits again
        return (option.losses[index] - option.losses[choice[g]]) / max(change, 1e-12)

    heap = [(r, g) for g in range(len(choice)) if (r := rate(g)) is not None]
    heapq.heapify(heap)
    while heap and not (down and problem.meets(choice)):
        _, g = heapq.heappop(heap)
        fresh = rate(g)
        if fresh is None:
            continue
        if heap and fresh > heap[0][0]:
            heapq.heappush(heap, (fresh, g))
            continue
        choice[g] += -1 if down else 1
        now = problem.usage(choice)
        following = rate(g)
        if following is not None:
            heapq.heappush(heap, (following, g))
    return choice


def knapsack_strategy(context) -> Kept:
    settings = context.settings
    passes = getattr(settings, "passes", 8)
    resolution = getattr(settings, "resolution", 2000)
    probes = getattr(settings, "probes", 32)
    return select_knapsack(context.selector, context.scores, passes, resolution, probes)
