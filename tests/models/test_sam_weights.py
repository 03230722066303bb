"""Finding, reading and loading SAM checkpoints (a tiny random SAM stands in for the real ones)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch as torch

from napari_cellist.models import WeightsNotFoundError, get_model_class  # noqa: E402
from napari_cellist.models.sam import architecture, weights  # noqa: E402
from napari_cellist.models.sam.torchvision_compat import load_segment_anything  # noqa: E402


@pytest.mark.parametrize("model_type", ["vit_b", "vit_l", "vit_h"])
def test_config_inferred_from_official_architectures(model_type):
    with torch.device("meta"):  # shapes only, no memory
        official = load_segment_anything().sam_model_registry[model_type]().state_dict()
        config = architecture.infer_config(official)
        rebuilt = architecture.build_sam(config).state_dict()
    assert config.img_size == 1024 and config.prompt_embed_dim == 256
    assert official.keys() == rebuilt.keys()
    assert all(official[k].shape == rebuilt[k].shape for k in official)


def test_tiny_checkpoint_loads_through_user_path(tmp_path):
    path = architecture.write_random_checkpoint(tmp_path / "my_sam.pth")
    saved = torch.load(path, weights_only=True)
    sam, model_id = weights.load_sam(path)
    assert sam.image_encoder.img_size == architecture.TINY_CONFIG.img_size
    loaded = sam.state_dict()
    assert all(torch.equal(saved[k], loaded[k]) for k in saved)
    assert model_id.startswith("my_sam-") and model_id == weights.model_id(path)


def test_sidecar_overrides_what_shapes_cannot_tell(tmp_path):
    config = architecture.TINY_CONFIG.__class__(
        **{**architecture.TINY_CONFIG.__dict__, "decoder_num_heads": 4}
    )
    path = architecture.write_random_checkpoint(tmp_path / "heads4.pth", config)
    (tmp_path / "heads4.pth.json").write_text(json.dumps({"decoder_num_heads": 4}))
    sam, _ = weights.load_sam(path)
    assert sam.mask_decoder.transformer.layers[0].self_attn.num_heads == 4
    (tmp_path / "heads4.pth.json").write_text(json.dumps({"num_heads": 4}))
    with pytest.raises(ValueError, match="Unknown keys"):
        weights.load_sam(path)


def test_standard_names_found_in_cache_folder(tmp_path, monkeypatch):
    monkeypatch.setenv(weights.CACHE_ENV, str(tmp_path))
    (tmp_path / "sam_vit_l_0b3195.pth").write_bytes(b"x")
    assert weights.resolve_checkpoint(None, "vit_l") == tmp_path / "sam_vit_l_0b3195.pth"
    assert weights.resolve_checkpoint(None, "auto") == tmp_path / "sam_vit_l_0b3195.pth"
    assert weights.resolve_checkpoint(tmp_path, "vit_l") == tmp_path / "sam_vit_l_0b3195.pth"


def test_missing_checkpoint_names_file_url_and_folder(tmp_path, monkeypatch):
    monkeypatch.setenv(weights.CACHE_ENV, str(tmp_path / "cache"))
    with pytest.raises(WeightsNotFoundError) as info:
        weights.resolve_checkpoint(None, "vit_b")
    message = str(info.value)
    assert "sam_vit_b_01ec64.pth" in message
    assert "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_b_01ec64.pth" in message
    assert str(tmp_path / "cache") in message
    with pytest.raises(WeightsNotFoundError, match="sam_vit_h_4b8939.pth"):
        weights.resolve_checkpoint(tmp_path / "nope.pth", "vit_h")


def test_model_without_checkpoint_raises_weights_not_found(tmp_path, monkeypatch):
    monkeypatch.setenv(weights.CACHE_ENV, str(tmp_path))
    model = get_model_class("sam")()
    with pytest.raises(WeightsNotFoundError, match=str(tmp_path).replace("\\", "\\\\")):
        model.predict(np.zeros((32, 32), np.float32))


def test_not_a_sam_file_is_rejected(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"layer.weight": torch.zeros(2, 2)}, path)
    with pytest.raises(ValueError, match="Not a ViT Segment Anything checkpoint"):
        weights.load_sam(path)


def test_legacy_checkpoint_format_loads_without_mmap(tmp_path):
    path = tmp_path / "legacy.pth"
    state = architecture.build_sam(architecture.TINY_CONFIG).state_dict()
    torch.save(state, path, _use_new_zipfile_serialization=False)
    sam, _ = weights.load_sam(path)
    assert all(torch.equal(state[k], v) for k, v in sam.state_dict().items())
