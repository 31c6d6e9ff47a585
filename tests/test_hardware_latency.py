"""The latency model: exact at measured points, monotone, roofline elsewhere, the whole-model factor; and the
latency budgets the selector checks with it."""

from __future__ import annotations

from dataclasses import replace
from types import MappingProxyType

import numpy as np
import pytest

from builders import conv_bn_relu_model, write_model
from edgeprune.analysis import analyze
from edgeprune.cost import PlanCostModel
from edgeprune.errors import BudgetError, InputError
from edgeprune.graph import load_model
from edgeprune.hardware import LatencyModel, LayerTable, ModelMeasurement, resolve_device
from edgeprune.hardware.latency import Roofline, _Table
from edgeprune.hardware.layers import model_layers
from edgeprune.selection import Budget, Selector, select_ranked, select_uniform
from edgeprune.selection.budget import parse_latency, parse_speedup


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """conv1 3->32 (its outputs prunable), conv2 32->8: one group of 32 channels."""
    path = write_model(conv_bn_relu_model(channels=(3, 32, 8), size=16), tmp_path_factory.mktemp("m") / "m.onnx")
    model = load_model(path)
    return model, analyze(model)


def tables_for(model, analysis, noisy: bool = False) -> dict[str, LayerTable]:
    conv1, conv2 = model_layers(model, analysis)
    counts = (8, 16, 24, 32)
    out1 = tuple(1.0 + 0.1 * c for c in counts)
    grid2 = [[0.5 + 0.05 * c] for c in counts]
    if noisy:
        out1 = (1.8, 1.7, 3.4, 4.2)  # 16 channels measured faster than 8: noise
    return {conv1.key: LayerTable(conv1.key, (3,), counts, (out1,)),
            conv2.key: LayerTable(conv2.key, counts, (8,), tuple(tuple(r) for r in grid2))}


def profile_with(model, analysis, **changes):
    return replace(resolve_device("host"), fingerprint=MappingProxyType({"provider": "cpu"}), **changes)


def keep_first(analysis, count: int) -> np.ndarray:
    group = analysis.prunable_groups[0]
    return analysis.keep_mask({group.id: tuple(range(count))})


def test_layers_are_found_with_their_prunable_sides(small):
    model, analysis = small
    conv1, conv2 = model_layers(model, analysis)
    assert (conv1.cin, conv1.cout, conv1.in_prunable, conv1.out_prunable) == (3, 32, False, True)
    assert (conv2.cin, conv2.cout, conv2.in_prunable, conv2.out_prunable) == (32, 8, True, False)
    assert conv1.macs(3, 32) == 3 * 32 * 9 * 16 * 16


def test_tables_are_exact_at_their_points_and_linear_between(small):
    model, analysis = small
    latency = LatencyModel(profile_with(model, analysis, layers=MappingProxyType(tables_for(model, analysis)),
                                        alignment=1), model, analysis)
    assert latency.table_coverage == 1.0 and latency.factor == 1.0
    for count in (8, 16, 24, 32):
        expected = (1.0 + 0.1 * count) + (0.5 + 0.05 * count)
        assert latency.predict(keep_first(analysis, count)) == pytest.approx(expected)
    halfway = (latency.predict(keep_first(analysis, 16)) + latency.predict(keep_first(analysis, 24))) / 2
    assert latency.predict(keep_first(analysis, 20)) == pytest.approx(halfway)


def test_unaligned_counts_cost_what_the_padded_count_costs(small):
    model, analysis = small
    latency = LatencyModel(profile_with(model, analysis, layers=MappingProxyType(tables_for(model, analysis))),
                           model, analysis)
    assert latency.profile.alignment == 8
    assert latency.predict(keep_first(analysis, 17)) == pytest.approx(latency.predict(keep_first(analysis, 24)))
    assert latency.breakdown(keep_first(analysis, 17))[0].cout == 17  # the report shows the real count


def test_noisy_tables_are_made_monotone(small):
    model, analysis = small
    latency = LatencyModel(profile_with(model, analysis, layers=MappingProxyType(tables_for(model, analysis, True))),
                           model, analysis)
    values = [latency.predict(keep_first(analysis, c)) for c in range(1, 33)]
    assert all(b >= a - 1e-12 for a, b in zip(values, values[1:]))


def test_below_the_table_the_roofline_shape_carries_on(small):
    model, analysis = small
    latency = LatencyModel(profile_with(model, analysis, layers=MappingProxyType(tables_for(model, analysis))),
                           model, analysis)
    at_edge, below = latency.predict(keep_first(analysis, 8)), latency.predict(keep_first(analysis, 4))
    assert 0 < below <= at_edge


def test_without_tables_the_roofline_prices_every_layer(small):
    model, analysis = small
    device = resolve_device("jetson-orin-nano")
    latency = LatencyModel(device, model, analysis)
    roof = Roofline(device)
    keep = keep_first(analysis, 16)
    expected = sum(roof.ms(layer, *counts) for layer, counts in zip(latency.layers, [(3, 16), (16, 8)]))
    assert latency.table_coverage == 0.0
    assert latency.predict(keep) == pytest.approx(expected)
    assert {row.source for row in latency.breakdown(keep)} == {"roofline"}
    assert [row.cout for row in latency.breakdown(keep)] == [16, 8]


def test_the_whole_model_factor_scales_to_the_measured_model(small):
    model, analysis = small
    tables = tables_for(model, analysis)
    layer_sum = (1.0 + 3.2) + (0.5 + 1.6)
    measured = ModelMeasurement(model.source_sha256, "m.onnx", 2 * layer_sum, layer_sum)
    profile = profile_with(model, analysis, layers=MappingProxyType(tables),
                           models=MappingProxyType({measured.sha256: measured}))
    latency = LatencyModel(profile, model, analysis)
    assert latency.factor == pytest.approx(2.0) and "this model" in latency.factor_source
    assert latency.predict_full() == pytest.approx(2 * layer_sum)
    other = replace(profile, models=MappingProxyType({"x": ModelMeasurement("x", "o.onnx", 3.0, 2.0)}))
    assert LatencyModel(other, model, analysis).factor == pytest.approx(1.5)


def test_two_measured_points_give_a_fixed_part_and_a_factor_through_both(small):
    model, analysis = small
    latency = LatencyModel(profile_with(model, analysis, layers=MappingProxyType(tables_for(model, analysis))),
                           model, analysis)
    half = analysis.keep_mask({g.id: tuple(range(g.channels // 2)) for g in analysis.prunable_groups})
    full_sum, half_sum = latency.layer_sum_full, latency.layer_sum(half)
    assert 0 < half_sum < full_sum
    # measured: 0.5 ms that no channel cut shrinks, plus 1.5x the sum of layers
    measured = ModelMeasurement(model.source_sha256, "m.onnx", 0.5 + 1.5 * full_sum, full_sum, "",
                                0.5 + 1.5 * half_sum, half_sum)
    line = LatencyModel(replace(latency.profile, models=MappingProxyType({measured.sha256: measured})),
                        model, analysis)
    assert line.fixed_ms == pytest.approx(0.5) and line.factor == pytest.approx(1.5)
    assert "half" in line.factor_source
    assert line.predict_full() == pytest.approx(measured.ms) and line.predict(half) == pytest.approx(measured.reduced_ms)
    removed, gain = line.gain_from_removed(half)  # the fixed part is in neither side of the gain
    assert removed == 0.0 and gain == pytest.approx(1.5 * (full_sum - half_sum))
    # a second point that would need a negative fixed part (noise larger than the difference): the plain factor
    noisy = replace(measured, reduced_ms=0.9 * half_sum * measured.ms / full_sum)
    plain = LatencyModel(replace(latency.profile, models=MappingProxyType({noisy.sha256: noisy})), model, analysis)
    assert plain.fixed_ms == 0.0 and plain.factor == pytest.approx(measured.ms / full_sum)


def test_depthwise_tables_interpolate_on_one_axis():
    table = _Table(LayerTable("dw", (8, 16, 32), (8, 16, 32), ((1.0,), (2.0,), (4.0,)), depthwise=True))
    assert table.at(*table.clamp(16, 16)) == 2.0 and table.at(*table.clamp(24, 24)) == pytest.approx(3.0)
    assert table.clamp(64, 64) == (32.0, 32.0)


@pytest.mark.parametrize("text, ms", [("5ms", 5.0), ("500us", 0.5), ("0.002s", 2.0), ("3", 3.0)])
def test_latency_targets_parse(text, ms):
    assert parse_latency(text) == pytest.approx(ms)


@pytest.mark.parametrize("text", ["fast", "-1ms", "0"])
def test_bad_latency_targets_fail(text):
    with pytest.raises(InputError, match="--target-latency"):
        parse_latency(text)


def test_speedup_targets_parse():
    assert parse_speedup("2x") == 2.0 and parse_speedup("1.5") == 1.5
    with pytest.raises(InputError, match="at least 1x"):
        parse_speedup("0.5x")


def selector_for(small, budget: Budget) -> Selector:
    model, analysis = small
    latency = LatencyModel(profile_with(model, analysis, layers=MappingProxyType(tables_for(model, analysis))),
                           model, analysis)
    return Selector(analysis, PlanCostModel(model, analysis), budget, latency)


def scores(analysis) -> dict[str, np.ndarray]:
    return {g.id: np.linspace(1.0, 0.1, g.channels) for g in analysis.prunable_groups}


@pytest.mark.parametrize("select", [select_ranked, select_uniform])
def test_a_speedup_budget_is_met_by_every_strategy(small, select):
    selector = selector_for(small, Budget(speedup=1.5, floor=0.0, alignment=8))
    kept = select(selector, scores(selector.analysis))
    assert selector.full_latency_ms / selector.latency_ms(kept) >= 1.5
    assert all(len(k) % 8 == 0 for k in kept.values())
    assert selector.meets(kept)


def test_a_latency_budget_keeps_as_much_as_it_can(small):
    selector = selector_for(small, Budget(latency_ms=4.0, floor=0.0, alignment=8))
    kept = select_ranked(selector, scores(selector.analysis))
    assert selector.latency_ms(kept) <= 4.0
    assert [len(k) for k in kept.values()] == [16]  # 16 channels: 2.6 + 1.3 ms; 24 would cost 5.1 ms


def test_a_target_below_the_frozen_part_is_a_usage_error(small):
    selector = selector_for(small, Budget(latency_ms=1.0, floor=0.5, alignment=8))
    with pytest.raises(InputError, match="frozen part of the model already costs"):
        selector.check_reachable(scores(selector.analysis))


def test_a_target_the_floor_forbids_is_a_budget_error(small):
    selector = selector_for(small, Budget(latency_ms=3.0, floor=0.75, alignment=8))
    with pytest.raises(BudgetError, match="predicted latency"):
        selector.check_reachable(scores(selector.analysis))


def test_a_latency_target_needs_a_predictor(small):
    model, analysis = small
    with pytest.raises(InputError, match="--device"):
        Selector(analysis, PlanCostModel(model, analysis), Budget(speedup=2.0))


def test_the_report_warns_when_the_predicted_gain_is_within_the_noise(small):
    from edgeprune.hardware.validation import HostMeasurement, latency_section

    model, analysis = small
    latency = LatencyModel(resolve_device("x86-cpu"), model, analysis)
    keep = keep_first(analysis, 24)
    quiet = HostMeasurement("CPUExecutionProvider", {"median_ms": 1.0}, {"median_ms": 0.8}, 1.25, 0.01, 20)
    noisy = HostMeasurement("CPUExecutionProvider", {"median_ms": 1.0}, {"median_ms": 0.8}, 1.25, 0.9, 20)
    section = latency_section(latency, keep, quiet)
    assert section["warnings"] == [] and section["predicted_speedup"] > 1.0
    assert "not the x86-cpu's" in section["notes"][0]
    assert [r["node"] for r in section["layers"]] == ["conv1", "conv2"]
    assert section["layers"][0]["mac_reduction"] == pytest.approx(0.25)
    assert "smaller than the host measurement noise" in latency_section(latency, keep, noisy)["warnings"][0]
    assert latency_section(latency, keep, None)["measured_host"] is None


def test_alignment_comes_from_the_device_unless_given():
    from edgeprune.cli.hardware_cmd import alignment_for

    assert alignment_for(None, None) == resolve_device("host").alignment  # no device: this machine is the target
    assert alignment_for(None, "raspberry-pi-5") == 4
    assert alignment_for(2, "jetson") == 2
    assert alignment_for(1, None) == 1
