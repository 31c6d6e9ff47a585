"""The settings tree: one set of keys, round trips through TOML and JSON, errors that name file and key."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from edgeprune.errors import InputError
from edgeprune.settings import SETTINGS_VERSION, OptimizeSettings, load_settings

NESTED = {"model": "m.onnx", "seed": 3, "calibration": {"calib": "data", "mean": [0.5], "held-out": 0.25},
          "budget": {"target-flops": "5x", "align": 1, "max-acc-drop": 0.5},
          "selection": {"strategy": "rl", "rl": {"episodes": 7, "search-time": 60, "agent": {"warmup": 3}},
                        "semiotic": {"per-mac": True}},
          "recovery": {"finetune-epochs": 2, "clip-norm": "none", "optimizer": "adamw"},
          "latency": {"device": "jetson"}, "checks": {"task": "classify"}}


def test_every_key_is_a_long_option_name_and_python_reads_the_same_tree():
    settings = OptimizeSettings.from_dict(NESTED, "x.toml")
    assert settings.budget.target_flops == pytest.approx(0.2) and settings.budget.align == 1
    assert settings.selection.rl.search_time == 60 and settings.selection.rl.agent.warmup == 3
    assert settings.calibration.mean == (0.5,) and settings.recovery.clip_norm is None
    distill = settings.recovery.distill(settings.seed)
    assert distill.epochs == 2 and distill.optimizer == "adamw" and distill.clip_norm is None and distill.seed == 3
    data = settings.to_dict()
    assert data["version"] == SETTINGS_VERSION and data["budget"]["target-flops"] == pytest.approx(0.2)
    assert data["selection"]["rl"]["search-images"] == settings.selection.rl.search_images
    assert "search_images" not in json.dumps(data)


def test_round_trips_through_json_and_toml_give_the_same_settings():
    settings = OptimizeSettings.from_dict(NESTED, "x.toml")
    assert OptimizeSettings.from_dict(json.loads(json.dumps(settings.to_dict()))) == settings
    text = settings.to_toml()
    assert "# target-params =" in text and 'clip-norm = "none"' in text  # unset keys listed, None kept
    assert OptimizeSettings.from_dict(tomllib.loads(text)) == settings
    assert OptimizeSettings.from_dict(tomllib.loads(OptimizeSettings().to_toml())) == OptimizeSettings()


@pytest.mark.parametrize("data,words", [
    ({"budget": {"algn": 1}}, "f.toml: unknown setting 'budget.algn' in [budget]; allowed: align, floor"),
    ({"optimize": 5}, "f.toml: unknown setting 'optimize'"),
    ({"budget": 5}, "f.toml: 'budget' must be a table of settings, not a number"),
    ({"seed": "x"}, "f.toml: seed takes a whole number, got 'x'"),
    ({"seed": True}, "f.toml: seed takes a whole number, got True"),
    ({"reconstruction": {"reconstruct": "maybe"}}, "reconstruction.reconstruct takes true or false"),
    ({"budget": {"floor": 2}}, "f.toml: [budget] floor must be a fraction in [0, 1], got 2"),
    ({"budget": {"target-flops": "7"}}, "f.toml: budget.target-flops: the value must keep a fraction"),
    ({"budget": {"target-latency": "soon"}}, "budget.target-latency: the value takes a time such as 5ms"),
    ({"budget": {"max-acc-drop": -1}}, "max-acc-drop is the most accuracy points the run may lose"),
    ({"selection": {"strategy": "magic"}}, "f.toml: selection.strategy is one of knapsack, mi, rl, semiotic, uniform"),
    ({"selection": {"rl": {"episodes": 0}}}, "[selection.rl] --episodes must be a whole number of at least 1"),
    ({"calibration": {"mean": "a,b"}}, "calibration.mean takes comma-separated numbers"),
    ({"calibration": {"calib": None}, "batch-size": 0}, "batch-size must be positive"),
    ({"version": 99}, "f.toml: settings version 99 is not this edgeprune's"),
    ({"recovery": {"train-data": "t.npz"}}, "train-data needs training: add finetune-epochs"),
])
def test_bad_settings_name_the_file_the_key_and_what_is_allowed(data, words):
    with pytest.raises(InputError) as caught:
        OptimizeSettings.from_dict(data, "f.toml")
    assert words in str(caught.value) and "\n" not in str(caught.value)


def test_flags_override_the_file_and_the_file_alone_must_be_valid(tmp_path):
    config = tmp_path / "s.toml"
    config.write_text('[optimize.budget]\ntarget-flops = "2x"\nfloor = 0.5\n[optimize.scoring]\ncriterion = "l1"\n')
    settings = load_settings(Path("m.onnx"), config, {"budget": {"floor": 0.3}})
    assert settings.budget.floor == 0.3 and settings.budget.target_flops == 0.5 and settings.scoring.criterion == "l1"
    assert settings.model == Path("m.onnx")
    config.write_text("budget = 3\n")
    with pytest.raises(InputError, match="'budget' must be a table"):
        load_settings(None, config, {"budget": {"floor": 0.3}})


def test_a_report_replays_only_for_its_own_model(tmp_path):
    model, other = tmp_path / "m.onnx", tmp_path / "other.onnx"
    model.write_bytes(b"model")
    other.write_bytes(b"another model")
    from edgeprune.graph.io import sha256_file

    report = tmp_path / "report.json"
    settings = OptimizeSettings.from_dict({"model": str(model), "budget": {"target-flops": 0.5}})
    report.write_text(json.dumps({"settings": settings.to_dict(), "model": {"sha256": sha256_file(model)}}))
    assert load_settings(None, report) == settings
    with pytest.raises(InputError, match="was written for another model"):
        load_settings(other, report)
    report.write_text(json.dumps({"model": {}}))
    with pytest.raises(InputError, match="a JSON config is an edgeprune report.json with a 'settings' table"):
        load_settings(None, report)
    data = settings.to_dict()
    data["version"] = 0
    report.write_text(json.dumps({"settings": data}))
    with pytest.raises(InputError, match="settings version 0 is not this edgeprune's"):
        load_settings(None, report)


def test_docs_list_every_key_as_the_settings_types_define_them():
    from edgeprune.settings import reference_markdown

    text = Path("docs/settings.md").read_text(encoding="utf-8")
    assert text == reference_markdown(), "regenerate: python -c 'from edgeprune.settings import reference_markdown; print(reference_markdown(), end=\"\")' > docs/settings.md"
    assert "| `target-flops` |" in text and "`--rl-set warmup=...`" in text and "## [selection.rl.agent]" in text
