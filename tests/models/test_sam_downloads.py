"""SAM weights on first use (a local mirror serves a tiny random SAM under the official and
micro-sam names), micro-sam's checkpoint layout, devices, and segment-everything planning."""

from __future__ import annotations

import hashlib
from collections import OrderedDict

import numpy as np
import pytest
import torch

from napari_cellist import downloads
from napari_cellist.devices import DeviceNotAvailableError
from napari_cellist.models import WeightsNotFoundError
from napari_cellist.models.sam import architecture, automatic, estimates, weights
from napari_cellist.models.sam.model import SamModel
from napari_cellist.models.sam.params import SamParams
from napari_cellist.progress import drain


@pytest.fixture(scope="module")
def tiny_bytes(tmp_path_factory) -> bytes:
    torch.set_num_threads(2)
    path = architecture.write_random_checkpoint(tmp_path_factory.mktemp("sam") / "tiny.pth")
    return path.read_bytes()


@pytest.fixture
def online(weights_server, tmp_path, monkeypatch):
    monkeypatch.setenv("CELLIST_SAM_CACHE", str(tmp_path / "sam"))
    monkeypatch.setenv("MICROSAM_CACHEDIR", str(tmp_path / "micro_sam"))
    monkeypatch.setenv("CELLIST_MODEL_MIRROR", weights_server.base)
    monkeypatch.delenv("CELLIST_OFFLINE", raising=False)
    return weights_server


def _image():
    grey = np.full((96, 96), 20, np.uint8)
    grey[10:40, 10:40] = 220
    grey[55:85, 50:80] = 160
    return grey


def _serve_as(server, monkeypatch, name: str, data: bytes) -> None:
    """Serve ``data`` as registry entry ``name`` with its real checksum replaced by the data's."""
    item = downloads.REGISTRY[name]
    server.files[item.filename] = data
    sha = "sha256:" + hashlib.sha256(data).hexdigest()
    patched = {**downloads.REGISTRY, name: downloads.with_url(item, item.url, hashes=(sha,))}
    monkeypatch.setattr(downloads, "REGISTRY", patched)


def test_vit_b_is_downloaded_on_first_use_and_then_used_offline(online, monkeypatch, tiny_bytes):
    _serve_as(online, monkeypatch, "sam/vit_b", tiny_bytes)
    model = SamModel(SamParams(checkpoint="vit_b", device="cpu", diameter=20.0))
    reports = []
    prediction = drain(model.predict_iter(_image()), reports.append)
    assert prediction.labels.shape == (96, 96)
    assert any("downloading sam_vit_b_01ec64.pth" in r.message for r in reports)
    assert any(r.message.startswith("segment everything: 1 tile(s)") for r in reports)
    target = downloads.cache_folder("sam") / "sam_vit_b_01ec64.pth"
    assert target.read_bytes() == tiny_bytes and online.requests == ["/sam_vit_b_01ec64.pth"]
    monkeypatch.setenv("CELLIST_OFFLINE", "1")  # from now on the cache is enough
    assert weights.resolve_checkpoint("vit_b") == target
    assert weights.resolve_checkpoint(None, "auto") == target
    drain(SamModel(SamParams(checkpoint="vit_b", diameter=20.0)).predict_iter(_image()))
    assert online.requests == ["/sam_vit_b_01ec64.pth"]


def test_corrupt_download_is_refused(online, monkeypatch, tiny_bytes):
    _serve_as(online, monkeypatch, "sam/vit_l", tiny_bytes)
    online.files["sam_vit_l_0b3195.pth"] = tiny_bytes[:-10] + b"0123456789"
    with pytest.raises(WeightsNotFoundError, match="checksum does not match"):
        drain(SamModel(SamParams(checkpoint="vit_l")).load_iter())
    assert not (downloads.cache_folder("sam") / "sam_vit_l_0b3195.pth").exists()


def test_offline_names_the_file_url_and_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("CELLIST_OFFLINE", "1")
    monkeypatch.setenv("CELLIST_SAM_CACHE", str(tmp_path))
    with pytest.raises(WeightsNotFoundError) as info:
        drain(SamModel(SamParams(checkpoint="", model_type="vit_h")).load_iter())
    message = str(info.value)
    assert "sam_vit_h_4b8939.pth" in message and str(tmp_path) in message
    assert "dl.fbaipublicfiles.com" in message and "pick the file" in message


def _micro_sam_checkpoint(tiny_bytes: bytes, path) -> dict:
    """A tiny SAM saved as micro-sam saves its fine-tuned models (torch_em's layout)."""
    plain = torch.load(__import__("io").BytesIO(tiny_bytes), weights_only=True)
    decoder = OrderedDict(
        [("encoder.proj.weight", torch.randn(4, 4)), ("out_conv.bias", torch.zeros(3))]
    )
    state = {
        "model_state": OrderedDict((f"sam.{k}", v) for k, v in plain.items()),
        "decoder_state": decoder,
    }
    torch.save(state, path)
    return {"plain": plain, "decoder": decoder}


def test_micro_sam_model_downloads_into_micro_sams_cache_and_loads(
    online, monkeypatch, tiny_bytes, tmp_path
):
    source = tmp_path / "vit_b_lm.pt"
    parts = _micro_sam_checkpoint(tiny_bytes, source)
    _serve_as(online, monkeypatch, "micro_sam/vit_b_lm", source.read_bytes())
    path = drain(weights.ensure_checkpoint_iter("vit_b_lm"))
    assert path == tmp_path / "micro_sam" / "models" / "vit_b_lm"  # micro-sam's own name/place
    loaded = weights.load_sam_file(path)
    state = loaded.sam.state_dict()
    assert all(torch.equal(state[k], v) for k, v in parts["plain"].items())
    assert set(loaded.extra) == {"decoder_state"}
    assert torch.equal(
        loaded.extra["decoder_state"]["encoder.proj.weight"],
        parts["decoder"]["encoder.proj.weight"],
    )
    sam, _ = weights.load_sam("vit_b_lm")  # by name once on disk
    assert sam.image_encoder.img_size == architecture.TINY_CONFIG.img_size


def test_split_checkpoint_layouts():
    plain = {"image_encoder.pos_embed": 1, "a": 2}
    assert weights.split_checkpoint(plain) == (plain, {})
    assert weights.split_checkpoint({"model": {"x": 1}}) == ({"x": 1}, {})
    inner, extra = weights.split_checkpoint({"model_state": {"sam.x": 1, "y": 2}, "epoch": 3})
    assert inner == {"x": 1, "y": 2} and extra == {"epoch": 3}


def test_checkpoint_is_loaded_onto_the_chosen_device(tiny_bytes, tmp_path, monkeypatch):
    path = tmp_path / "tiny.pth"
    path.write_bytes(tiny_bytes)
    seen = []
    real_load = torch.load
    monkeypatch.setattr(
        torch, "load", lambda *a, **k: seen.append(k.get("map_location")) or real_load(*a, **k)
    )
    loaded = weights.load_sam_file(path, device="cpu")
    assert seen == [torch.device("cpu")]
    assert {p.device for p in loaded.sam.parameters()} == {torch.device("cpu")}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    model = SamModel(SamParams(checkpoint=str(path), device="cuda"))
    with pytest.raises(DeviceNotAvailableError, match="'cuda'"):
        drain(model.predict_iter(_image()))


def test_plan_sizes_tiles_and_points_to_image_and_objects():
    # the case: a 1030 x 1349 image and a tiny SAM (128 px input) made 336 tiles
    plan = automatic.plan_everything((1030, 1349), diameter=30.0, model_input=128)
    assert plan.n_tiles <= 4 and plan.tile_size >= 1024 and plan.overlap >= 30
    assert plan.points_per_side == 32  # capped by the user's maximum
    big = automatic.plan_everything((1030, 1349), diameter=120.0, model_input=1024)
    assert big.n_tiles == 1 and big.points_per_side == 17  # 1349 / (0.7 * 120) = 16.06, up
    small = automatic.plan_everything((2048, 2048), diameter=8.0, model_input=1024)
    assert small.tile_size == 1024 and small.n_tiles == 9
    with pytest.raises(ValueError, match="diameter must be positive"):
        automatic.plan_everything((10, 10), 0.0, 1024)


def test_plan_estimate_and_description(tiny_bytes, tmp_path):
    path = tmp_path / "tiny.pth"
    path.write_bytes(tiny_bytes)
    sam, _ = weights.load_sam(path)
    plan = automatic.estimate_plan(automatic.plan_everything((300, 400), 25.0, 64), sam)
    assert plan.seconds is not None and 0 < plan.seconds < 600
    assert plan.describe().startswith(f"segment everything: {plan.n_tiles} tile(s) of")
    assert "about" in plan.describe()


def test_embedding_estimate_scales_with_the_encoder():
    from napari_cellist.models.sam.torchvision_compat import load_segment_anything

    registry = load_segment_anything().sam_model_registry
    with torch.device("meta"):
        flops = {name: estimates.encoder_flops(registry[name]()) for name in ("vit_b", "vit_h")}
    assert 0.8e12 < flops["vit_b"] < 1.1e12  # ~0.9 TFLOP per 1024 x 1024 tile
    assert 5 < flops["vit_h"] / flops["vit_b"] < 7
    assert estimates.describe_seconds(42) == "about 42 s"
    assert estimates.describe_seconds(600) == "about 10 min"


def test_embedding_announces_its_estimated_time(tiny_bytes, tmp_path):
    from napari_cellist.models.sam.interactive import PromptableSegmenter

    path = tmp_path / "tiny.pth"
    path.write_bytes(tiny_bytes)
    sam, model_id = weights.load_sam(path)
    first = next(PromptableSegmenter(sam, model_id).embed_iter(_image()))
    assert "on cpu, about" in first.message
