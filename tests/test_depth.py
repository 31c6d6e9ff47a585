"""Depth pruning: removable residual blocks, depth and mixed plans with proof, the latency they save, and
`optimize --strategy semiotic --depth` end to end (docs/results-depth.md)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType

import numpy as np
import pytest
from builders import init, make_model, tensor_info, write_model
from cli_runner import run
from corpus import EXPORTERS, export_corpus, export_corpus_model
from onnx import helper
from onnx_graphsurgeon.logger import G_LOGGER

from edgeprune.analysis import analyze
from edgeprune.analysis.blocks import find_blocks
from edgeprune.cost import PlanCostModel, model_cost
from edgeprune.errors import InputError
from edgeprune.graph import load_model
from edgeprune.surgery import PruningPlan, apply_plan, simple_plan, verify
from edgeprune.surgery.depth import resolve_blocks, with_removed

G_LOGGER.severity = G_LOGGER.ERROR

REFERENCE = Path(__file__).resolve().parents[1] / "edgeprune" / "reference" / "resnet20_fmnist.onnx"
CALIB = Path(__file__).resolve().parents[1] / "calibration" / "fashion-mnist"
RESIDUAL = ("resnet_basic", "resnet_bottleneck", "resnet20", "mobilenet_v2", "mobilenet_v3", "resnext", "convnext")
CASES = [(name, exporter) for name in RESIDUAL for exporter in EXPORTERS]


@pytest.fixture(scope="module")
def loaded(corpus_dir):
    export_corpus(CASES, corpus_dir)
    cache = {}

    def load(name: str, exporter: str):
        if (name, exporter) not in cache:
            model = load_model(export_corpus_model(name, exporter, corpus_dir))
            cache[name, exporter] = (model, analyze(model))
        return cache[name, exporter]

    return load


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_resnet20_blocks_are_the_identity_shortcuts(exporter, loaded):
    model, analysis = loaded("resnet20", exporter)
    blocks = find_blocks(model, analysis)
    assert len(blocks.blocks) == 7  # 9 blocks, of which the two that widen and downsample have projections
    assert len(blocks.rejected) == 2
    assert all("not the identity" in r.reason and "Conv" in r.reason for r in blocks.rejected)
    for block in blocks.blocks:
        assert len(block.layers) == 2 and len(block.internal_groups) == 1
        assert block.macs == sum(n.macs for n in model_cost(model).nodes if n.name in block.layers)
    assert sorted(len(joins) for joins in blocks.stages.values()) == [3, 3, 3]


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_mobilenet_v2_blocks_and_the_one_without_a_group_of_its_own(exporter, loaded):
    model, analysis = loaded("mobilenet_v2", exporter)
    blocks = find_blocks(model, analysis).blocks
    assert len(blocks) == 3 and [len(b.layers) for b in blocks] == [2, 3, 3]
    # the first block has no expand conv: its depthwise conv runs on the stage's own channels
    assert blocks[0].internal_groups == () and all(len(b.internal_groups) == 1 for b in blocks[1:])


def _residual(extra_reader: bool = False, broadcast: bool = False) -> Path:
    """x -> conv1 -> relu -> conv2 -> Add(x, .): a residual block, spoiled on request."""
    rng = np.random.default_rng(0)
    w = [(rng.standard_normal((4, 4, 1, 1)) * 0.3).astype(np.float32) for _ in range(3)]
    nodes = [
        helper.make_node("Conv", ["x", "w0"], ["a"], name="conv1"),
        helper.make_node("Relu", ["a"], ["r"], name="relu"),
        helper.make_node("Conv", ["r", "w1"], ["b"], name="conv2"),
    ]
    if broadcast:
        nodes.append(helper.make_node("ReduceMean", ["b"], ["m"], name="mean", axes=[2, 3], keepdims=1))
        nodes.append(helper.make_node("Add", ["x", "m"], ["s"], name="join"))
    else:
        nodes.append(helper.make_node("Add", ["x", "b"], ["s"], name="join"))
    output = "s"
    if extra_reader:
        nodes.append(helper.make_node("Conv", ["r", "w2"], ["c"], name="outside"))
        nodes.append(helper.make_node("Concat", ["s", "c"], ["y"], name="cat", axis=1))
        output = "y"
    else:
        nodes.append(helper.make_node("Conv", ["s", "w2"], ["y"], name="head"))
        output = "y"
    return make_model(
        nodes,
        [tensor_info("x", [1, 4, 6, 6])],
        [tensor_info(output, [1, 8 if extra_reader else 4, 6, 6])],
        [init(f"w{i}", w[i]) for i in range(3)],
    )


@pytest.mark.parametrize(
    "extra_reader,broadcast,reason",
    [(True, False, "also read by outside, outside the block"), (False, True, "different shapes")],
)
def test_a_join_that_cannot_go_says_why(tmp_path, extra_reader, broadcast, reason):
    model = load_model(write_model(_residual(extra_reader, broadcast), tmp_path / "m.onnx"))
    blocks = find_blocks(model, analyze(model))
    assert blocks.blocks == () and len(blocks.rejected) == 1
    assert reason in blocks.rejected[0].reason


def test_a_plain_residual_block_is_found(tmp_path):
    model = load_model(write_model(_residual(), tmp_path / "m.onnx"))
    (block,) = find_blocks(model, analyze(model)).blocks
    assert block.id == "join" and block.shortcut == "x" and block.nodes == ("conv1", "relu", "conv2", "join")


@pytest.mark.parametrize("name,exporter", CASES)
def test_depth_and_mixed_plans_prove(name, exporter, loaded):
    model, analysis = loaded(name, exporter)
    blocks = find_blocks(model, analysis).blocks
    assert blocks, f"{name} has removable residual blocks"
    channels = simple_plan(analysis, 0.5)
    costs = PlanCostModel(model, analysis)
    for plan in (
        replace(simple_plan(analysis, 1.0), removed_blocks=tuple(b.id for b in blocks)),  # depth alone, named
        replace(channels, removed_blocks=tuple(b.id for b in blocks[::2])),  # mixed, named
        replace(channels, kept=MappingProxyType(with_removed(channels.kept, blocks[-1:]))),  # mixed, emptied
    ):
        pruned = apply_plan(model, analysis, plan)
        proof = verify(model, analysis, plan, pruned)
        assert proof.passed, (name, exporter, proof.max_rel)
        _, removed = _resolved(model, analysis, plan)
        names = {node.name for node in pruned.proto.graph.node}
        assert not names & {n for b in removed for n in b.nodes}, "the removed blocks' nodes are gone"
        priced = costs.cost_of_plan(with_removed(plan.kept, removed)).macs
        assert model_cost(pruned).macs <= priced  # a branch layer on the stage's own channels stays priced
        if name.startswith("resnet") or name == "resnext":
            assert model_cost(pruned).macs == priced
        assert analyze(pruned).groups, "the result is analysed again"


def _resolved(model, analysis, plan):
    blocks = find_blocks(model, analysis)
    return blocks, resolve_blocks(plan, blocks)


def test_an_old_plan_loads_and_a_channel_plan_is_written_as_before():
    old = {"format": 1, "model_sha256": "ab", "strategy": "mi", "kept": {"g": [0, 2]}}
    plan = PruningPlan.from_dict(old)
    assert plan.removed_blocks == ()
    assert "removed_blocks" not in plan.to_dict()
    depth = replace(plan, removed_blocks=("/blocks/blocks.1/Add",))
    assert PruningPlan.from_dict(json.loads(depth.to_json())) == depth
    with pytest.raises(InputError, match="removed_blocks"):
        PruningPlan.from_dict({**old, "removed_blocks": "b"})


def test_a_bad_depth_plan_is_refused_with_the_reason(loaded):
    model, analysis = loaded("resnet20", "legacy")
    blocks = find_blocks(model, analysis)
    base = simple_plan(analysis, 1.0)
    projection = blocks.rejected[0].id
    with pytest.raises(InputError, match="cannot be removed: the shortcut is not the identity"):
        apply_plan(model, analysis, replace(base, removed_blocks=(projection,)))
    with pytest.raises(InputError, match="no residual block of this model"):
        apply_plan(model, analysis, replace(base, removed_blocks=("nowhere",)))
    stage = next(
        joins for joins in blocks.stages.values() if all(j not in {r.id for r in blocks.rejected} for j in joins)
    )
    whole_stage = replace(base, removed_blocks=stage)
    apply_plan(model, analysis, whole_stage)  # no guard asked for: allowed
    with pytest.raises(InputError, match="removes every residual block of stage"):
        apply_plan(model, analysis, whole_stage, stage_keep=1)


def test_emptying_part_of_a_block_is_refused(loaded):
    model, analysis = loaded("resnet_bottleneck", "legacy")
    (block,) = [b for b in find_blocks(model, analysis).blocks if len(b.internal_groups) == 2]
    plan = replace(simple_plan(analysis, 1.0), kept=MappingProxyType({block.internal_groups[0]: ()}))
    with pytest.raises(InputError, match="empty every group inside it"):
        apply_plan(model, analysis, plan)


def test_the_latency_saved_is_the_removed_layers_overhead():
    from edgeprune.hardware import LatencyModel, Roofline, resolve_device

    model = load_model(REFERENCE)
    analysis = analyze(model)
    blocks = find_blocks(model, analysis).blocks
    roof = Roofline(MappingProxyType({"fp32": 1e30}), 1e30, 1.0, layer_overhead_us=10.0)
    device = replace(
        resolve_device("host"),
        roofline=roof,
        layers=MappingProxyType({}),
        models=MappingProxyType({}),
        measured_overhead_us=None,
    )
    latency = LatencyModel(device, model, analysis)
    assert latency.predict_full() == pytest.approx(len(latency.layers) * 0.010)  # launch-bound: overhead alone
    for count in (1, 3):
        keep = analysis.keep_mask(with_removed({}, blocks[:count]))
        saved, total = latency.gain_from_removed(keep)
        assert saved == pytest.approx(total) == pytest.approx(2 * count * 0.010)
        assert sum(row.source == "removed" for row in latency.breakdown(keep)) == 2 * count
    measured = LatencyModel(replace(device, measured_overhead_us=3.0), model, analysis)
    assert measured.predict_full() == pytest.approx(len(latency.layers) * 0.003)  # the device's own figure wins


def test_the_latency_section_splits_the_gain_between_blocks_and_channels():
    """A mixed plan's report: ms saved by the removed layers plus ms saved by the thinned channels is the whole
    predicted gain, and the removed part is what those layers cost before; a channel plan's section has none."""
    from edgeprune.hardware import LatencyModel, resolve_device
    from edgeprune.hardware.validation import latency_section
    from edgeprune.reporting.text import gain_text

    model = load_model(REFERENCE)
    analysis = analyze(model)
    blocks = find_blocks(model, analysis).blocks[:2]
    latency = LatencyModel(resolve_device("jetson-orin-nano"), model, analysis)
    channels = simple_plan(analysis, 0.5)
    assert "predicted_gain" not in latency_section(latency, analysis.keep_mask(channels.kept), None)
    keep = analysis.keep_mask(with_removed(channels.kept, blocks))
    section = latency_section(latency, keep, None, removed_blocks=len(blocks))
    split = section["predicted_gain"]
    gone = [row for row in section["layers"] if row["source"] == "removed"]
    assert split["removed_blocks"] == 2 and split["removed_layers"] == len(gone) == 4
    assert split["depth_ms"] == pytest.approx(sum(row["predicted_ms_before"] for row in gone))
    assert split["depth_ms"] > 0 and split["channels_ms"] > 0
    assert split["depth_ms"] + split["channels_ms"] == pytest.approx(
        section["predicted_ms_before"] - section["predicted_ms_after"]
    )
    assert split["depth_share"] == pytest.approx(split["depth_ms"] / split["ms_saved"])
    text = gain_text(section)
    assert text is not None and "2 removed blocks (4 layers, " in text and f"{split['depth_ms']:.3f} ms" in text


def test_a_measured_overhead_is_written_and_read_back():
    import tomllib

    from edgeprune.hardware import dumps_profile, resolve_device
    from edgeprune.hardware.profile import parse_profile

    device = replace(resolve_device("host"), measured_overhead_us=1.25)
    again = parse_profile(tomllib.loads(dumps_profile(device)), "test")
    assert again.measured_overhead_us == pytest.approx(1.25) and again.layer_overhead_us == pytest.approx(1.25)
    assert again.overhead_source == "measured on the device"


def test_a_channel_strategy_after_depth_meets_the_budget_on_top_of_it():
    """The mi ranking through the depth-aware selector: the blocks stay gone, the channels fill the rest."""
    from edgeprune.selection import Budget, Selector
    from edgeprune.selection.ranker import select_ranked
    from edgeprune.semiotic.depth_selector import DepthSelector

    model = load_model(REFERENCE)
    analysis = analyze(model)
    blocks = find_blocks(model, analysis).blocks[:2]
    scores = {g.id: np.arange(g.channels, dtype=float) for g in analysis.prunable_groups}
    base = Selector(analysis, PlanCostModel(model, analysis), Budget(macs=0.5, floor=0.25, alignment=8))
    alone = select_ranked(base, scores)
    depth = DepthSelector(base, blocks)
    kept = depth.complete(select_ranked(depth, scores))
    assert base.meets(kept) and all(kept[g] == () for b in blocks for g in b.internal_groups)
    outside = [g.id for g in depth.analysis.prunable_groups]
    assert sum(len(kept[g]) for g in outside) > sum(len(alone[g]) for g in outside)  # depth spared channels
    pruned = apply_plan(model, analysis, PruningPlan(analysis.model_sha256, MappingProxyType(kept)))
    assert sum(n.op_type == "Add" for n in pruned.proto.graph.node) == 9 - len(blocks)


def _optimize(capsys, out: Path, *extra):
    return run(
        capsys,
        "optimize",
        REFERENCE,
        "--calib",
        CALIB,
        "--preset",
        "fashion-mnist",
        "--limit",
        "100",
        "--strategy",
        "semiotic",
        "--semiotic-images",
        "16",
        "--latency-rounds",
        "0",
        "--seed",
        "3",
        "--out",
        out,
        *extra,
    )


def test_optimize_semiotic_depth_on_removes_blocks_and_repeats(capsys, tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    code, out, err = _optimize(capsys, first, "--depth", "on", "--target-flops", "0.8")
    assert code == 0, err
    plan = PruningPlan.load(first / "plan.json")
    model = load_model(REFERENCE)
    analysis = analyze(model)
    _, removed = _resolved(model, analysis, plan)
    assert len(removed) >= 2, "0.8 of the MACs needs two blocks: 3.6 M MACs each of 31 M"
    pruned = load_model(first / "model.pruned.onnx")
    assert sum(n.op_type == "Add" for n in pruned.proto.graph.node) == 9 - len(removed)
    report = json.loads((first / "report.json").read_text())
    assert report["verification"]["passed"]
    assert sum(row["source"] == "removed" for row in report["latency"]["layers"]) == 2 * len(removed)
    latency, split = report["latency"], report["latency"]["predicted_gain"]
    assert split["removed_blocks"] == len(removed) and split["removed_layers"] == 2 * len(removed)
    gain = latency["predicted_ms_before"] - latency["predicted_ms_after"]
    assert split["depth_ms"] + split["channels_ms"] == pytest.approx(gain, abs=1e-9) and split["depth_ms"] > 0
    shown = f"{split['depth_ms']:.3f} ms saved by {len(removed)} removed blocks"
    assert shown in out and shown in (first / "report.md").read_text() and shown in (first / "report.html").read_text()
    assert _optimize(capsys, second, "--depth", "on", "--target-flops", "0.8")[0] == 0
    assert (first / "plan.json").read_bytes() == (second / "plan.json").read_bytes()
    code, out, err = run(capsys, "prune", REFERENCE, "--plan", first / "plan.json", "-o", tmp_path / "again.onnx")
    assert code == 0, err  # the plan replays: its emptied groups say which blocks went


def test_depth_works_with_the_other_strategies(capsys, tmp_path):
    for chosen in ("mi", "knapsack"):
        out = tmp_path / chosen
        code, _, err = _optimize(capsys, out, "--depth", "on", "--strategy", chosen, "--target-flops", "0.6")
        assert code == 0, err
        report = json.loads((out / "report.json").read_text())
        assert report["verification"]["passed"] and report["cost_after"]["macs"] <= 0.6 * report["cost_before"]["macs"]
        assert any(row["source"] == "removed" for row in report["latency"]["layers"]), chosen


def test_optimize_depth_bad_inputs_write_nothing(capsys, tmp_path, corpus_dir):
    out = tmp_path / "out"
    code, _, err = _optimize(capsys, out, "--depth", "only", "--depth-stage-keep", "3", "--target-flops", "0.5")
    assert code == 1 and "--depth only" in err and "short of the budget" in err
    vgg = Path(__file__).resolve().parents[1] / "edgeprune" / "reference" / "vgg_fmnist.onnx"
    code, _, err = run(
        capsys,
        "optimize",
        vgg,
        "--calib",
        CALIB,
        "--preset",
        "fashion-mnist",
        "--limit",
        "40",
        "--strategy",
        "semiotic",
        "--depth",
        "only",
        "--target-flops",
        "0.8",
        "--out",
        out,
    )
    assert code == 2 and "no removable residual block" in err
    assert not out.exists() or not any(out.iterdir())


def test_prune_refuses_a_block_that_cannot_go(capsys, tmp_path):
    model = load_model(REFERENCE)
    blocks = find_blocks(model, analyze(model))
    plan = replace(simple_plan(analyze(model), 1.0), removed_blocks=(blocks.rejected[0].id,))
    plan.save(tmp_path / "plan.json")
    code, _, err = run(capsys, "prune", REFERENCE, "--plan", tmp_path / "plan.json", "-o", tmp_path / "o.onnx")
    assert code == 2 and "cannot be removed: the shortcut is not the identity" in err
    assert not (tmp_path / "o.onnx").exists()


def test_inspect_lists_the_blocks_and_why_the_others_stay(capsys):
    code, out, _ = run(capsys, "inspect", REFERENCE)
    assert code == 0 and "7 removable residual blocks, 2 residual joins not removable" in out
    code, out, _ = run(capsys, "inspect", REFERENCE, "--json")
    data = json.loads(out)
    assert len(data["blocks"]) == 7 and data["blocks"][0]["layers"] == 2
    assert "not the identity" in data["residual_joins_not_removable"][0]["reason"]


def test_reconstruction_refits_after_removed_blocks_in_a_chain(tmp_path, loaded):
    """MobileNetV2: a removed block's Add fed the next block directly, which then reads the shortcut."""
    from edgeprune.calibration import load_calibration
    from edgeprune.reconstruct import reconstruct

    model, analysis = loaded("mobilenet_v2", "legacy")
    blocks = find_blocks(model, analysis).blocks
    plan = PruningPlan(analysis.model_sha256, MappingProxyType(with_removed({}, blocks[1:2])))
    pruned = apply_plan(model, analysis, plan)
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", **{model.input_names[0]: rng.standard_normal((24, 3, 32, 32)).astype(np.float32)})
    data = load_calibration(tmp_path / "d.npz", model)
    rebuilt, report = reconstruct(model, pruned, analysis, plan, data, batch_size=8, provider="cpu")
    refitted = [layer for layer in report.layers if layer.rows]
    assert refitted and not {layer.node for layer in refitted} & set(blocks[1].nodes)
    assert all(layer.error_after <= layer.error_before for layer in refitted)


def test_the_depth_search_is_refused_without_blocks_for_depth_only():
    from edgeprune.semiotic.depth import remove_blocks
    from edgeprune.semiotic.settings import DepthSettings

    class Context:  # only what remove_blocks reads before it gives up
        model = load_model(Path(__file__).resolve().parents[1] / "edgeprune" / "reference" / "vgg_fmnist.onnx")
        analysis = analyze(model)
        selector = None

    with pytest.raises(InputError, match="no removable residual block"):
        remove_blocks(Context(), DepthSettings("only"), [])  # (blocks short of the budget: exit 1, the CLI test)


def test_the_goal_mode_searches_depth_too(capsys, tmp_path, monkeypatch):
    """With depth on, the goal's range and the up-front check count the blocks that may go."""
    from edgeprune.goal import speedup_range
    from edgeprune.job import load_job
    from edgeprune.settings import OptimizeSettings

    def reach(depth: str) -> float:
        settings = OptimizeSettings.from_dict(
            {"model": str(REFERENCE), "latency": {"device": "jetson"}, "selection": {"depth": depth}}
        )
        job = load_job(settings, data=False)
        return speedup_range(job, {g.id: np.ones(g.channels) for g in job.analysis.prunable_groups})[1]

    assert reach("on") > 1.5 > reach("off")
    code, out, err = run(
        capsys, "optimize", REFERENCE, "--device", "jetson", "--target-speedup", "1.3x", "--depth", "on", "--dry-run"
    )
    assert code == 0, err


def test_a_depth_pruned_model_distils_from_its_original(capsys, tmp_path):
    pytest.importorskip("torch")
    out = tmp_path / "run"
    code, _, err = _optimize(capsys, out, "--depth", "only", "--target-flops", "0.8", "--finetune-epochs", "0.5")
    assert code == 0, err
    report = json.loads((out / "report.json").read_text())
    assert report["recovery"]["final"]["steps"] > 0 and report["comparison_recovered"] is not None
    from edgeprune.graph import load_model
    from edgeprune.train.correspond import check_correspondence

    with pytest.raises(Exception, match="not a pruning of the teacher"):  # an unrelated model still is refused
        check_correspondence(load_model(REFERENCE), load_model(Path(REFERENCE).parent / "vgg_fmnist.onnx"))
