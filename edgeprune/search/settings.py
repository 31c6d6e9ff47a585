"""Settings of the RL search (`--strategy rl`): the agent's AMC defaults and the search's own, all typed.

Kept free of torch so `OptimizeConfig` can hold them without importing the agent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, ClassVar

from edgeprune.errors import InputError
from edgeprune.settings_tree import setting

REWARDS = ("entropy", "accuracy", "agreement", "refit")
RERANKS = ("agreement", "accuracy", "refit", "none")
JUDGES = ("reconstructed", "masked")
MAX_EPISODES = 100_000  # the replay buffer and the records grow with them
ENTROPY_REFERENCES = ("kept", "all", "dead")


@dataclass(frozen=True)
class AgentSettings:
    """DDPG as in AMC (He et al., 2018): these defaults are AMC's values (docs/methods.md#rl-search)."""

    hidden: int = 300  # two hidden layers of this width, actor and critic
    actor_lr: float = 1e-4
    critic_lr: float = 1e-3
    tau: float = 0.01  # soft update of the target networks
    batch: int = 64
    discount: float = 1.0
    replay_per_group: int = 100  # replay buffer of this many transitions per prunable group
    baseline_alpha: float = 0.5  # moving-average reward baseline: b += alpha * (mean reward - b)
    warmup: int = 100  # episodes of uniform random actions before the agent learns
    sigma: float = 0.5  # truncated-normal exploration around the actor's action
    sigma_decay: float = 0.95  # per episode after the warm-up

    def __post_init__(self) -> None:
        positive = ("hidden", "actor_lr", "critic_lr", "batch", "replay_per_group", "sigma")
        for name in positive:
            if not getattr(self, name) > 0:
                raise InputError(f"rl setting {name} must be positive, got {getattr(self, name)}")
        for name in ("tau", "baseline_alpha", "sigma_decay", "discount"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise InputError(f"rl setting {name} must be in [0, 1], got {getattr(self, name)}")
        if self.warmup < 0:
            raise InputError(f"rl setting warmup must be 0 or more episodes, got {self.warmup}")


@dataclass(frozen=True)
class SearchSettings:
    """What the search runs on and for how long.

    ``search_images``: calibration images every episode is judged on (fixed for the whole search); ``rerank_images``:
    other images, never seen by the search, on which the ``top_k`` plans are re-ranked by ``rerank``.
    ``min_ratio``/``max_ratio`` bound each group's preserve ratio (the action); ``spend_budget`` (our choice,
    not AMC's) also bounds it from below so every episode ends at the budget, not under it: rewards then
    compare plans of one cost. ``entropy_reference``: the entropy of the kept maps is divided by that of
    the same maps (``kept``) or of all maps (``all``) of the layer in the unpruned model; ``dead`` counts the
    removed maps as the dead maps they are in the pruned model (see `rewards.entropy_ratios`). ``judge``:
    every plan is judged as the network reconstruction would produce from the search images
    (``reconstructed``, `SequentialEvaluator`), or masked before any reconstruction (``masked``, faster, and
    near chance at 5x: docs/results-search.md).
    """

    SECTION: ClassVar[str] = "Strategy"

    reward: str = setting(
        "entropy",
        choices=REWARDS,
        help="rl: entropy (label-free, spatial entropy of the kept "
        "maps), accuracy (needs labels), agreement (label-free, with the original model's "
        "predictions) or refit (label-free, what the refitted layers lose), each of the plan's "
        "reconstructed network.",
    )
    episodes: int = setting(300, help="rl: search episodes.")
    search_time: float | None = setting(None, metavar="SECONDS", help="rl: stop the search after this many seconds.")
    search_images: int = setting(
        256, help="rl: calibration images every episode is judged on (at most half of those the search has)."
    )
    rerank_images: int = 128
    refit_images: int = setting(
        256,
        cli=False,
        help="rl: calibration images, none of them judged, the reconstructed judge refits every plan from.",
    )
    rerank: str = "agreement"
    top_k: int = 5
    min_ratio: float = 0.2
    max_ratio: float = 1.0
    spend_budget: bool = True
    entropy_reference: str = "kept"
    judge: str = setting(
        "reconstructed",
        cli=False,
        choices=JUDGES,
        help="rl: judge plans as reconstruction would leave them (reconstructed) or masked before it (masked).",
    )
    smooth: bool = setting(
        True,
        cli=False,
        help="rl: accuracy as the mean probability of the label, agreement as minus the KL divergence "
        "from the original's outputs, not top-1: they rank plans better on a few hundred images.",
    )
    agent: AgentSettings = field(default_factory=AgentSettings)  # the [selection.rl.agent] table

    def __post_init__(self) -> None:
        if self.reward not in REWARDS:
            raise InputError(f"unknown reward '{self.reward}'; choose one of {', '.join(REWARDS)}")
        if self.rerank not in RERANKS:
            raise InputError(f"unknown re-rank '{self.rerank}'; choose one of {', '.join(RERANKS)}")
        if isinstance(self.episodes, bool) or not isinstance(self.episodes, int) or self.episodes < 1:
            raise InputError(f"--episodes must be a whole number of at least 1, got {self.episodes!r}")
        if self.episodes > MAX_EPISODES:
            raise InputError(f"--episodes must be at most {MAX_EPISODES}, got {self.episodes}")
        if self.search_time is not None and not 0 < self.search_time < float("inf"):
            raise InputError(f"--search-time must be a positive number of seconds, got {self.search_time}")
        if self.search_images < 1 or self.rerank_images < 1 or self.top_k < 1 or self.refit_images < 1:
            raise InputError("--search-images, rerank_images, refit_images and top_k must be at least 1")
        if not 0.0 < self.min_ratio <= self.max_ratio <= 1.0:
            raise InputError(
                f"rl keep ratios need 0 < min_ratio <= max_ratio <= 1, got {self.min_ratio}, {self.max_ratio}"
            )
        if self.judge not in JUDGES:
            raise InputError(f"rl judge is one of {', '.join(JUDGES)}, got '{self.judge}'")
        if self.entropy_reference not in ENTROPY_REFERENCES:
            raise InputError(
                f"entropy_reference is one of {', '.join(ENTROPY_REFERENCES)}, got '{self.entropy_reference}'"
            )

    def with_options(self, options: Mapping[str, str]) -> SearchSettings:
        """Settings from ``KEY=VALUE`` pairs (`--rl-set`): a field of these settings or of the agent's."""
        own = {f.name: f for f in fields(self) if f.name != "agent"}
        agent = {f.name: f for f in fields(AgentSettings)}
        mine: dict[str, Any] = {}
        theirs: dict[str, Any] = {}
        for key, text in options.items():
            name = key.strip().replace("-", "_")
            if name in own:
                mine[name] = _parse(name, text, getattr(self, name))
            elif name in agent:
                theirs[name] = _parse(name, text, getattr(self.agent, name))
            else:
                valid = ", ".join(sorted(set(own) | set(agent)))
                raise InputError(f"unknown rl setting '{key}'; choose one of {valid}")
        return replace(self, **mine, agent=replace(self.agent, **theirs))


def _parse(name: str, text: str, current: object) -> object:
    raw = str(text).strip()
    try:
        if isinstance(current, bool):
            if raw.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError
            return raw.lower() in ("true", "1", "yes")
        if isinstance(current, int):
            return int(raw)
        if isinstance(current, float) or current is None:
            return None if raw.lower() == "none" else float(raw)
        return raw
    except ValueError:
        raise InputError(f"rl setting {name} cannot take '{text}'") from None


def parse_pairs(pairs: tuple[str, ...] | list[str]) -> dict[str, str]:
    """``("warmup=20", "sigma=0.3")`` as a dict; a pair without '=' is a usage error."""
    result = {}
    for pair in pairs:
        key, sep, value = str(pair).partition("=")
        if not sep or not key.strip():
            raise InputError(f"--rl-set takes KEY=VALUE, got '{pair}'")
        result[key.strip()] = value
    return result
