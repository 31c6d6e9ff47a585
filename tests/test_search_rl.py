"""The RL search: budget wall, rewards, agent determinism, interruption, settings and command-line errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from onnx_graphsurgeon.logger import G_LOGGER

from cli_runner import run
from corpus import export_corpus_model
from edgeprune.analysis import analyze
from edgeprune.calibration import load_calibration
from edgeprune.cost import PlanCostModel
from edgeprune.errors import InputError
from edgeprune.graph import load_model
from edgeprune.search.environment import PruningEnvironment
from edgeprune.search.rewards import (accuracy_reward, agreement_reward, entropy_ratios, entropy_reward,
                                      map_entropies)
from edgeprune.search.rl import run_search, search
from edgeprune.search.settings import AgentSettings, SearchSettings, parse_pairs
from edgeprune.selection import Budget, SelectionContext, Selector

G_LOGGER.severity = G_LOGGER.ERROR


@pytest.fixture(scope="module")
def resnet(corpus_dir):
    path = export_corpus_model("resnet20", "legacy", corpus_dir)
    model = load_model(path)
    return path, model, analyze(model)


@pytest.fixture(scope="module")
def calib(tmp_path_factory) -> Path:
    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("calib") / "calib.npz"
    np.savez(path, input=rng.standard_normal((48, 1, 28, 28)).astype(np.float32), labels=rng.integers(0, 10, 48))
    return path


def _scores(analysis):
    return {g.id: np.arange(g.channels, dtype=np.float64)[::-1].copy() for g in analysis.prunable_groups}


def _env(model, analysis, macs: float, spend: bool = True, min_ratio: float = 0.2):
    selector = Selector(analysis, PlanCostModel(model, analysis), Budget(macs=macs))
    return selector, PruningEnvironment(model, selector, _scores(analysis), min_ratio, 1.0, spend)


@pytest.mark.parametrize("macs", [0.7, 0.5, 0.2])
def test_every_episode_meets_the_budget_and_spends_it(resnet, macs):
    _, model, analysis = resnet
    selector, env = _env(model, analysis, macs)
    rng = np.random.default_rng(0)
    for _ in range(20):
        walk = env.episode()
        while not walk.done:
            state = walk.state()
            assert state.shape == (env.state_size,) and np.isfinite(state).all()
            taken = walk.step(float(rng.uniform(0.0, 1.2)))
            assert 0.0 < taken <= 1.0
        kept = walk.plan()
        assert selector.meets(kept)
        assert selector.fractions(kept)[0] > macs - 0.08, "the wall lets no episode leave much budget unspent"


def test_without_spending_the_wall_still_meets_and_low_actions_stay_low(resnet):
    _, model, analysis = resnet
    selector, env = _env(model, analysis, 0.7, spend=False)
    walk = env.episode()
    while not walk.done:
        walk.step(0.0)
    assert selector.meets(walk.plan()) and selector.fractions(walk.plan())[0] < 0.5


def test_a_budget_the_wall_cannot_meet_is_a_usage_error(resnet):
    _, model, analysis = resnet
    with pytest.raises(InputError, match="cannot be met by the rl search's wall"):
        _env(model, analysis, 0.2, min_ratio=0.9)


def test_dead_maps_count_as_noise_and_never_look_good():
    rng = np.random.default_rng(0)
    smooth = np.tile(np.linspace(0, 1, 8, dtype=np.float32), (8, 1))[None, None]
    noisy = rng.random((1, 1, 8, 8)).astype(np.float32)
    dead = np.zeros((1, 1, 8, 8), dtype=np.float32)
    h_smooth, h_noisy, h_dead = (float(map_entropies(m)[0, 0]) for m in (smooth, noisy, dead))
    assert h_smooth < h_noisy <= h_dead == pytest.approx(np.log2(64))
    original = [map_entropies(np.concatenate([smooth, noisy], axis=1))]
    every = [np.array([True, True])]
    assert entropy_reward(original, original, every) == pytest.approx(-1.0)
    killed = [map_entropies(np.concatenate([dead, noisy], axis=1))]
    assert entropy_reward(killed, original, every) < -1.0
    only_smooth = [original[0][:, :1]]
    assert entropy_ratios(only_smooth, original, [np.array([True, False])], "all")[0] < 1.0
    assert entropy_ratios(only_smooth, original, [np.array([True, False])], "kept")[0] == pytest.approx(1.0)


def test_accuracy_and_agreement_rewards():
    logits = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]])
    assert accuracy_reward(logits, np.array([1, 0, 0])) == pytest.approx(2 / 3)
    assert agreement_reward(logits, logits[:, ::-1]) == 0.0
    assert agreement_reward(logits, logits * 2) == 1.0
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    assert accuracy_reward(logits, np.array([1, 0, 0]), smooth=True) == pytest.approx((p[0, 1] + p[1, 0] + p[2, 0]) / 3)
    assert agreement_reward(logits, logits, smooth=True) == pytest.approx(0.0, abs=1e-12)
    q = np.exp(logits * 2) / np.exp(logits * 2).sum(axis=1, keepdims=True)
    kl = np.sum(q * (np.log(q) - np.log(p)), axis=1).mean()
    assert agreement_reward(logits, logits * 2, smooth=True) == pytest.approx(-kl)  # top-1 agrees, KL does not
    assert agreement_reward(logits * 1.5, logits * 2, smooth=True) > agreement_reward(logits, logits * 2, smooth=True)


def test_every_episode_meets_a_latency_budget(resnet):
    from edgeprune.stages import latency_model

    _, model, analysis = resnet
    selector = Selector(analysis, PlanCostModel(model, analysis), Budget(speedup=1.3, floor=0.0, alignment=8),
                        latency_model(None, model, analysis))
    env = PruningEnvironment(model, selector, _scores(analysis))
    rng = np.random.default_rng(2)
    for _ in range(10):
        walk = env.episode()
        while not walk.done:
            assert np.isfinite(walk.state()).all()
            walk.step(float(rng.uniform(0.0, 1.0)))
        assert selector.meets(walk.plan())
        assert selector.usage(analysis.keep_mask(walk.plan())) > 0.9, "the wall spends the latency budget too"


def _context(model, analysis, calib_path, settings, macs=0.5):
    selector = Selector(analysis, PlanCostModel(model, analysis), Budget(macs=macs))
    fit = load_calibration(calib_path, model)
    return SelectionContext(model, analysis, selector, _scores(analysis), fit=fit, settings=settings, seed=3,
                            provider="cpu", batch_size=16)


SHORT = SearchSettings(episodes=6, search_images=16, rerank_images=8, top_k=3,
                       agent=AgentSettings(warmup=3, batch=8, hidden=16))


@pytest.mark.parametrize("reward", ["entropy", "agreement", "accuracy", "refit"])
def test_a_seed_gives_the_same_plan_twice(resnet, calib, reward):
    _, model, analysis = resnet
    settings = SearchSettings(**{**SHORT.__dict__, "reward": reward})
    first, record, summary = run_search(_context(model, analysis, calib, settings))
    second, _, _ = run_search(_context(model, analysis, calib, settings))
    assert first == second
    assert record.episodes == 6 and record.stopped == "episodes" and len(record.best) == 3
    assert [c.reward for c in record.best] == sorted((c.reward for c in record.best), reverse=True)
    assert summary["images"] == 16 and len(summary["rerank_scores"]) == 3
    assert Selector(analysis, PlanCostModel(model, analysis), Budget(macs=0.5)).meets(first)


def test_ctrl_c_keeps_the_best_plan_so_far(resnet):
    _, model, analysis = resnet
    _, env = _env(model, analysis, 0.5)
    calls = []

    def judge(kept):
        calls.append(kept)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return -float(len(calls))

    record = search(env, judge, SHORT, seed=0)
    assert record.stopped == "interrupted" and record.episodes == 3
    assert record.best[0].reward == -1.0 and record.best[0].kept == calls[0]


def test_ctrl_c_before_any_plan_is_not_swallowed(resnet):
    _, model, analysis = resnet
    _, env = _env(model, analysis, 0.5)

    def judge(kept):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        search(env, judge, SHORT, seed=0)


def test_the_time_limit_stops_the_search(resnet):
    _, model, analysis = resnet
    _, env = _env(model, analysis, 0.5)
    record = search(env, lambda kept: 0.0, SearchSettings(episodes=1000, search_time=1e-9, agent=SHORT.agent), seed=0)
    assert record.stopped == "time" and record.episodes == 1


def test_settings_from_key_value_pairs():
    settings = SearchSettings().with_options(parse_pairs(["warmup=7", "sigma=0.25", "spend-budget=false", "top_k=2"]))
    assert (settings.agent.warmup, settings.agent.sigma, settings.spend_budget, settings.top_k) == (7, 0.25, False, 2)
    assert SearchSettings().agent == AgentSettings(300, 1e-4, 1e-3, 0.01, 64, 1.0, 100, 0.5, 100, 0.5, 0.95)
    with pytest.raises(InputError, match="unknown rl setting 'nope'"):
        SearchSettings().with_options({"nope": "1"})
    with pytest.raises(InputError, match="KEY=VALUE"):
        parse_pairs(["warmup"])
    with pytest.raises(InputError, match="cannot take"):
        SearchSettings().with_options({"warmup": "many"})


@pytest.mark.parametrize("extra,message", [
    (("--episodes", 0), "--episodes must be a whole number of at least 1"),
    (("--search-time", -1), "--search-time must be a positive number of seconds"),
    (("--rl-set", "min_ratio=0.9", "--target-flops", "5x"), "cannot be met by the rl search's wall"),
    (("--rl-set", "sigma"), "--rl-set takes KEY=VALUE"),
    (("--reward", "accuracy", "--target-flops", "2x"), "--reward accuracy needs labelled calibration data"),
    (("--episodes", 10**6), "--episodes must be at most 100000"),
    (("--search-time", "inf"), "--search-time must be a positive number of seconds"),
    (("--reward", "refit", "--rl-set", "judge=masked"), "the refit reward judges the reconstructed network"),
    (("--rl-set", "judge=guess"), "selection.rl.judge is one of reconstructed, masked"),
])
def test_bad_rl_input_is_a_one_line_error_with_exit_code_2(capsys, resnet, tmp_path, extra, message):
    path = resnet[0]
    calib = tmp_path / "unlabelled.npz"
    np.savez(calib, input=np.random.default_rng(1).standard_normal((32, 1, 28, 28)).astype(np.float32))
    args = ["optimize", path, "--calib", calib, "--out", tmp_path / "out", "--strategy", "rl", "--criterion", "l1",
            "--episodes", 2, *(() if "--target-flops" in extra else ("--target-flops", "2x")), *extra]
    code, _, err = run(capsys, *args)
    assert code == 2, err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_optimize_with_the_rl_strategy_end_to_end(capsys, resnet, calib, tmp_path):
    path = resnet[0]
    plans = []
    for name in ("a", "b"):
        code, out, err = run(capsys, "optimize", path, "--calib", calib, "--out", tmp_path / name, "--strategy", "rl",
                             "--criterion", "l1", "--target-flops", "2x", "--episodes", 4, "--search-images", 16,
                             "--batch-size", 16, "--rl-set", "warmup=2", "--rl-set", "batch=4", "--no-reconstruct")
        assert code == 0, err
        plans.append((tmp_path / name / "plan.json").read_text())
    assert plans[0] == plans[1]
    import json

    report = json.loads((tmp_path / "a" / "report.json").read_text())
    selection = report["settings"]["selection"]
    assert selection["strategy"] == "rl" and selection["rl"]["episodes"] == 4 and selection["rl"]["agent"]["warmup"] == 2
    assert selection["rl"]["agent"]["batch"] == 4 and selection["rl"]["search-images"] == 16
    assert report["cost_after"]["macs"] <= 0.5 * report["cost_before"]["macs"]


def test_removed_maps_count_as_dead_in_the_dead_reference():
    rng = np.random.default_rng(1)
    maps = rng.random((2, 4, 8, 8)).astype(np.float32)
    original = [map_entropies(maps)]
    mask = np.array([True, True, False, False])
    kept = [original[0][:, mask]]
    top = np.log2(64)
    expected = (kept[0].sum() + 2 * 2 * top) / 8 / original[0].mean()
    assert entropy_ratios(kept, original, [mask], "dead", [top])[0] == pytest.approx(expected)
    assert entropy_ratios(original, original, [np.ones(4, bool)], "dead", [top])[0] == pytest.approx(1.0)
    assert entropy_reward(kept, original, [mask], "dead", [top]) < -1.0
