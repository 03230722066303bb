"""The model registry: capabilities on the entry, parameter classes without heavy imports, and
one build_model rule (a checkpoint's parameters are the base, explicit overrides win)."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import fields, replace

import pytest

from napari_cellist.models import (
    REGISTRY,
    ModelEntry,
    TrainableSegmenter,
    build_model,
    get_entry,
    get_model_class,
    non_default_values,
    params_class,
    register,
    train_params_class,
    trainable_models,
)
from napari_cellist.models.base import Segmenter
from napari_cellist.models.threshold import ThresholdModel, ThresholdParams


@pytest.mark.parametrize("name", list(REGISTRY))
def test_entry_states_what_the_class_does(name):
    entry, cls = get_entry(name), get_model_class(name)
    assert cls.name == name
    assert params_class(name) is cls.Params
    assert entry.trainable == issubclass(cls, TrainableSegmenter)
    assert entry.takes_prompts == (cls.refine_iter is not Segmenter.refine_iter)
    if entry.trainable:
        assert train_params_class(name) is cls.TrainParams
        assert entry.steps_field in {f.name for f in fields(cls.TrainParams)}
    assert entry.checkpoint_suffix.startswith(".")


def test_listing_and_forms_need_neither_torch_nor_pyro():
    code = (
        "import sys, json, napari_cellist.models as m\n"
        "names = m.trainable_models()\n"
        "forms = [m.train_params_class(n).__name__ for n in names] + [m.params_class('air').__name__]\n"
        "print(json.dumps([names, forms, 'torch' in sys.modules, 'pyro' in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    names, forms, torch_loaded, pyro_loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert names == ["threshold", "cellpose", "air"]
    assert forms == ["ThresholdFitParams", "CellposeTrainParams", "AirTrainParams", "AirParams"]
    assert not torch_loaded and not pyro_loaded


def test_trainable_models_by_kind():
    assert trainable_models(["target"]) == ["air"]
    assert "sam" not in trainable_models()
    with pytest.raises(ValueError, match="cannot be trained"):
        train_params_class("sam")


def test_checkpoint_parameters_are_the_base_and_overrides_win(tmp_path):
    stored = ThresholdParams(method="li", diameter=18.0, min_area=5.0)
    path = ThresholdModel(stored).save(tmp_path / "t.json")
    assert build_model("threshold", path).params == stored
    model = build_model("threshold", path, {"diameter": 30, "fill_holes": "false"})
    assert model.params == replace(stored, diameter=30, fill_holes=False)
    assert build_model("threshold", None, {"diameter": 30}).params == ThresholdParams(diameter=30)


def test_build_model_errors_are_actionable(tmp_path):
    with pytest.raises(ValueError, match="Unknown parameter colour; ThresholdParams has"):
        build_model("threshold", None, {"colour": 1})
    with pytest.raises(FileNotFoundError, match="does not exist"):
        build_model("threshold", tmp_path / "missing.json")
    with pytest.raises(ValueError, match="Unknown model 'nope'"):
        build_model("nope")


def test_non_default_values_are_the_changed_fields():
    assert non_default_values(ThresholdParams()) == {}
    assert non_default_values(ThresholdParams(method="li", diameter=12.0)) == {
        "method": "li",
        "diameter": 12.0,
    }


def test_a_model_of_another_package_registers_by_absolute_path():
    entry = ModelEntry(
        "mine", "napari_cellist.models.threshold.model:ThresholdModel", "base", "test entry"
    )
    register(entry)
    try:
        assert get_model_class("mine") is ThresholdModel
        assert params_class("mine") is ThresholdParams  # falls back to the class's Params
        assert not get_entry("mine").trainable
    finally:
        del REGISTRY["mine"]
