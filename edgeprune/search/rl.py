"""The RL search (`--strategy rl`): AMC-style DDPG over per-group preserve ratios, judged by a reward.

Each episode walks the groups (the environment walls every plan inside the budget), is judged once on fixed
calibration images through the masked evaluator, and teaches the agent. The best plans by reward are kept;
at the end the top few are re-ranked on images the search never saw, and only the winner goes on to surgery.
Ctrl-C stops the search and goes on with the best plan so far (nothing is written until the run's end).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from edgeprune.errors import InputError
from edgeprune.search.environment import PruningEnvironment
from edgeprune.search.settings import SearchSettings
from edgeprune.selection.selector import Kept

logger = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class Candidate:
    reward: float
    episode: int
    kept: Kept
    ratios: tuple[float, ...]


@dataclass
class SearchRecord:
    """What a search did: its best plans (best first), how far it got, and where its time went (seconds)."""

    best: list[Candidate] = field(default_factory=list)
    episodes: int = 0
    stopped: str = "episodes"  # or "time", "interrupted"
    seconds: dict[str, float] = field(default_factory=lambda: {"episode": 0.0, "agent": 0.0, "total": 0.0})
    rewards: list[float] = field(default_factory=list)

    def keep(self, candidate: Candidate, top_k: int) -> None:
        if any(c.ratios == candidate.ratios for c in self.best):
            return
        self.best.append(candidate)
        self.best.sort(key=lambda c: (-c.reward, c.episode))
        del self.best[top_k:]


def search(
    env: PruningEnvironment,
    judge: Callable[[Kept], float],
    settings: SearchSettings,
    seed: int,
    progress: Progress | None = None,
) -> SearchRecord:
    """Run episodes until ``settings.episodes`` or ``settings.search_time`` (at least one episode always runs); Ctrl-C
    ends it early, keeping the best."""
    import torch

    from edgeprune.search.ddpg import DDPGAgent

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small networks: one thread is as fast, and the same on every machine
    try:
        agent = DDPGAgent(env.state_size, settings.agent, settings.agent.replay_per_group * len(env.groups), seed)
        return _loop(env, judge, agent, settings, progress)
    finally:
        torch.set_num_threads(threads)


def _loop(env, judge, agent, settings: SearchSettings, progress) -> SearchRecord:
    record = SearchRecord()
    start = time.perf_counter()
    try:
        for episode in range(settings.episodes):
            if episode and settings.search_time is not None and time.perf_counter() - start >= settings.search_time:
                record.stopped = "time"
                break
            began = time.perf_counter()
            walk, states, actions = env.episode(), [], []
            while not walk.done:
                state = walk.state()
                states.append(state)
                actions.append(walk.step(agent.act(state, episode, settings.min_ratio, settings.max_ratio)))
            kept = walk.plan()
            reward = judge(kept)
            learned = time.perf_counter()
            record.keep(Candidate(reward, episode, kept, tuple(actions)), settings.top_k)
            record.rewards.append(reward)
            record.episodes = episode + 1
            agent.remember(states, actions, reward)
            if episode >= settings.agent.warmup:
                for _ in range(len(states)):
                    agent.update()
            record.seconds["agent"] += time.perf_counter() - learned
            record.seconds["episode"] += learned - began
            if progress is not None:
                progress("search", episode + 1, settings.episodes)
            if episode % 25 == 0 or episode + 1 == settings.episodes:
                logger.info("rl episode %d: reward %.4f, best %.4f", episode, reward, record.best[0].reward)
    except KeyboardInterrupt:
        if not record.best:
            raise
        record.stopped = "interrupted"
        logger.warning("search interrupted after %d episodes: going on with the best plan so far", record.episodes)
    record.seconds["total"] = time.perf_counter() - start
    return record


def rerank(candidates: list[Candidate], score: Callable[[Kept], float]) -> tuple[Candidate, list[float]]:
    """The candidate with the best held-out score; ties go to the better search reward (the earlier one)."""
    scores = [score(c.kept) for c in candidates]
    best = max(range(len(candidates)), key=lambda i: (scores[i], -i))
    return candidates[best], scores


def _images(data, count: int, batch_size: int, seed: int):
    """``count`` images of ``data`` (fewer if it has fewer) as fixed input batches, with their labels."""
    chosen = data.take(min(count, data.count), seed=seed)
    batches = list(chosen.batches(batch_size))
    labels = None if chosen.labels is None else np.concatenate([b.labels for b in batches])
    return [b.inputs for b in batches], labels


def run_search(context) -> tuple[Kept, SearchRecord, dict]:
    """The whole strategy: data, judge, environment, search, re-rank. Returns the plan, the record and a summary."""
    settings: SearchSettings = context.settings or SearchSettings()
    fit, seed, batch_size = context.fit, context.seed, context.batch_size
    labelled = fit is not None and fit.labels is not None
    if fit is None:
        raise InputError("the rl strategy needs calibration data to judge its plans")
    if settings.reward == "accuracy" and not labelled:
        raise InputError(
            "--reward accuracy needs labelled calibration data (class sub-folders or 'labels' in the "
            ".npz); use --reward entropy or agreement without labels"
        )
    if settings.rerank == "accuracy" and not labelled:
        raise InputError("re-ranking by accuracy needs labelled calibration data; use rerank=agreement")
    if settings.judge == "masked" and "refit" in (settings.reward, settings.rerank):
        raise InputError("the refit reward judges the reconstructed network: use judge=reconstructed with it")
    env = PruningEnvironment(
        context.model, context.selector, context.scores, settings.min_ratio, settings.max_ratio, settings.spend_budget
    )
    held = min(settings.rerank_images, fit.count // 3)
    reranking = settings.rerank != "none" and settings.top_k > 1 and held >= 1
    search_data, rerank_data = fit.split(held, seed=seed) if reranking else (fit, None)
    judged, rows = _judged_and_rows(search_data, settings, seed)
    batches, labels = _images(judged, settings.search_images, batch_size, seed)
    refit_rows = _images(rows, settings.refit_images, batch_size, seed)[0] if rows is not None else []
    judge = _judge(context, settings, refit_rows, batches, labels, settings.reward)
    record = search(env, judge, settings, seed, context.progress)
    record.seconds.update({f"judge_{k}": round(v, 3) for k, v in judge.seconds.items()})
    winner = record.best[0]
    scores: list[float] = []
    if reranking and len(record.best) > 1:
        rerank_batches, rerank_labels = _images(rerank_data, held, batch_size, seed)
        referee = _judge(context, settings, refit_rows, rerank_batches, rerank_labels, settings.rerank)
        winner, scores = rerank(record.best, referee)
    summary = {
        "episodes": record.episodes,
        "stopped": record.stopped,
        "winner_episode": winner.episode,
        "winner_reward": winner.reward,
        "rerank_scores": scores,
        "images": len(labels) if labels is not None else sum(len(next(iter(b.values()))) for b in batches),
        "seconds": dict(record.seconds),
    }
    logger.info("rl search: %s", summary)
    return winner.kept, record, summary


def _judged_and_rows(data, settings: SearchSettings, seed: int):
    """The images plans are judged on and, apart from them, those the reconstructed judge refits from (None
    for the masked judge): at most half of them judged, so that both have some; with fewer than two images,
    the refit reads the judged one too."""
    from edgeprune.search.sequential import judged_and_rows

    if settings.judge != "reconstructed":
        return data, None
    return judged_and_rows(data, settings.search_images, seed)


def _judge(context, settings: SearchSettings, rows, batches, labels, reward: str):
    """A judge of plans on ``batches``: as reconstruction would leave them (``judge = reconstructed``, the
    default: `SequentialEvaluator`, refitting from the images ``rows`` with the run's reconstruction
    settings), or masked before any reconstruction (``judge = masked``)."""
    from edgeprune.search.judge import Judge, measured_layers

    model, analysis = context.model, context.analysis
    evaluator = None
    if settings.judge == "reconstructed":
        from edgeprune.search.sequential import reconstructing_evaluator

        layers = measured_layers(model, analysis) if reward == "entropy" else ()
        rebuild = getattr(context, "reconstruction", None)
        evaluator = reconstructing_evaluator(
            model, analysis, rows, batches, layers, reconstruction=rebuild, seed=context.seed
        )
    return Judge(
        model,
        analysis,
        batches,
        labels,
        reward,
        context.provider,
        settings.entropy_reference,
        evaluator,
        settings.smooth,
    )


def rl_strategy(context) -> Kept:
    kept, _, _ = run_search(context)
    return kept
