"""AIR: Pyro model/guide structure, parameter isolation, float32 robustness, checkpoints."""

from __future__ import annotations

import numpy as np
import pyro as pyro
import pytest
import torch as torch
from pyro import poutine  # noqa: E402

from napari_cellist.models import get_entry, get_model_class  # noqa: E402
from napari_cellist.models.air import AirModel, AirParams, AirTrainParams, NetConfig
from napari_cellist.models.air.generative import Anneal  # noqa: E402
from napari_cellist.models.air.supervision import cell_targets, to_working  # noqa: E402
from napari_cellist.models.air.training import Schedule, TrainingItem, make_batch  # noqa: E402
from napari_cellist.progress import drain  # noqa: E402
from napari_cellist.types import Sample  # noqa: E402


def _blobs(shape=(96, 96), centres=((30, 30), (60, 70), (25, 75)), radius=6, value=200.0):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    image = np.full(shape, 10.0, np.float32)
    labels = np.zeros(shape, np.int32)
    for k, (cy, cx) in enumerate(centres, start=1):
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2
        image[disc] = value
        labels[disc] = k
    return image, labels


def _batch(model: AirModel, supervised: bool):
    image, labels = _blobs()
    work = to_working(image, 12.0, model.net.geom)
    targets = cell_targets(work, model.net.geom, labels if supervised else None)
    item = TrainingItem(work, targets if supervised else None, 1.0)
    return make_batch(
        [item],
        Schedule(steps=1, batch_size=2, crop=64),
        model.net.geom.cell,
        np.random.default_rng(0),
    )


def test_registered_as_target_model():
    assert get_model_class("air") is AirModel
    assert get_entry("air").kind == "target" and get_entry("air").trainable


@pytest.mark.parametrize("supervised", [False, True])
def test_model_and_guide_sites_match(supervised):
    model = AirModel()
    batch = _batch(model, supervised)
    anneal = Anneal(0.5, 0.1)
    guide_trace = poutine.trace(model.net.guide).get_trace(batch, anneal)
    model_trace = poutine.trace(poutine.replay(model.net.model, trace=guide_trace)).get_trace(
        batch, anneal
    )
    pyro.util.check_model_guide_match(model_trace, guide_trace)
    latent = {
        n for n, s in model_trace.nodes.items() if s["type"] == "sample" and not s["is_observed"]
    }
    assert {"z_pres", "z_where", "z_what"} <= latent
    observed = {
        n for n, s in model_trace.nodes.items() if s["type"] == "sample" and s["is_observed"]
    }
    assert ("ann_pres" in observed) == supervised
    loss = pyro.infer.Trace_ELBO().differentiable_loss(
        model.net.model, model.net.guide, batch, anneal
    )
    assert torch.isfinite(loss.detach())


def test_presence_is_reparameterised_so_the_image_likelihood_trains_it():
    """The relaxed presence must be sampled with ``rsample``: otherwise Pyro falls back to
    baseline-free score-function gradients and unsupervised AIR cannot learn where objects are."""
    model = AirModel()
    batch = _batch(model, supervised=False)
    anneal = Anneal(0.5, 0.1)
    guide_trace = poutine.trace(model.net.guide).get_trace(batch, anneal)
    assert guide_trace.nodes["z_pres"]["fn"].has_rsample
    assert guide_trace.nodes["z_pres"]["value"].requires_grad
    model_trace = poutine.trace(poutine.replay(model.net.model, trace=guide_trace)).get_trace(
        batch, anneal
    )
    image_loglik = model_trace.nodes["x"]["fn"].log_prob(model_trace.nodes["x"]["value"]).sum()
    (grad,) = torch.autograd.grad(image_loglik, guide_trace.nodes["z_pres"]["value"])
    assert grad.abs().sum() > 0


def test_two_models_do_not_share_parameters():
    pyro.clear_param_store()
    a, b = AirModel(), AirModel()
    before = {k: v.clone() for k, v in b.net.state_dict().items()}
    image, labels = _blobs()
    drain(a.fit_iter([Sample(image, labels)], AirTrainParams(steps=2, batch_size=2, crop_size=64)))
    assert all(torch.equal(before[k], v) for k, v in b.net.state_dict().items())
    assert any(not torch.equal(before[k], v) for k, v in a.net.state_dict().items())
    assert len(pyro.get_param_store()) == 0  # nothing went through Pyro's global store


@pytest.mark.parametrize(
    "kind",
    ["uint16", "saturated", "constant", "nan", "float_huge"],
)
def test_awkward_images_give_no_nan(kind):
    image, labels = _blobs()
    if kind == "uint16":
        image = (image * 300).astype(np.uint16)
    elif kind == "saturated":
        image = np.where(image > 100, 65535, image).astype(np.uint16)
        image[:40] = 65535
    elif kind == "constant":
        image = np.full((96, 96), 7, np.uint16)
    elif kind == "nan":
        image[5:20, 5:20] = np.nan
        image[50, 50] = np.inf
    else:
        image = image.astype(np.float32) * 1e30
    model = AirModel(AirParams(diameter=12.0))
    result = drain(
        model.fit_iter(
            [Sample(image, labels if kind != "constant" else None)],
            AirTrainParams(steps=2, batch_size=2, crop_size=64, diameter=12.0),
        )
    )
    assert all(np.isfinite(p.loss) for p in result.history if p.loss is not None)
    assert all(torch.isfinite(p).all() for p in model.net.parameters())
    pred = model.predict(image)
    assert pred.labels.shape == image.shape and pred.labels.dtype == np.int32
    for extra in pred.extras.values():
        assert np.isfinite(extra).all()
    assert all(0.0 <= o.score <= 1.0 for o in pred.objects.values())


def test_checkpoint_round_trip(tmp_path):
    image, labels = _blobs()
    model = AirModel(AirParams(min_score=0.3))
    drain(
        model.fit_iter([Sample(image, labels)], AirTrainParams(steps=2, batch_size=2, crop_size=64))
    )
    path = model.save(tmp_path / "air.pt")
    assert [p.name for p in tmp_path.iterdir()] == ["air.pt"]  # no temporary file left behind
    loaded = AirModel.load(path)
    assert loaded.params == model.params and loaded.diameter == model.diameter
    for key, value in model.net.state_dict().items():
        assert torch.equal(value, loaded.net.state_dict()[key])
    np.testing.assert_array_equal(loaded.predict(image).labels, model.predict(image).labels)
    assert AirModel.from_checkpoint(path, AirParams(min_score=0.9)).params.min_score == 0.9


def test_load_rejects_foreign_files(tmp_path):
    bad = tmp_path / "bad.pt"
    torch.save({"weights": torch.zeros(2)}, bad)
    with pytest.raises(ValueError, match="not an AIR checkpoint"):
        AirModel.load(bad)
    with pytest.raises(FileNotFoundError):
        AirModel.load(tmp_path / "missing.pt")


def test_load_refuses_an_older_checkpoint_version_with_a_way_forward(tmp_path):
    path = AirModel().save(tmp_path / "air.pt")
    payload = torch.load(path, weights_only=True)
    payload["version"] = 2  # AIR before its boxes could turn
    torch.save(payload, path)
    with pytest.raises(ValueError, match="older napari-cellist.*train it again"):
        AirModel.load(path)


def test_an_image_without_objects_gives_an_empty_prediction_and_a_reconstruction():
    """Nothing reaching min_score is a result (no objects, the background), not an error."""
    image = np.random.default_rng(0).normal(100.0, 5.0, (128, 128)).astype(np.float32)
    pred = AirModel(AirParams(min_score=1.0)).predict(image)
    assert pred.labels.max() == 0 and pred.objects == {}
    recon = pred.extras["reconstruction"]
    assert recon.shape == image.shape and np.isfinite(recon).all()


def test_rejects_3d_images():
    with pytest.raises(ValueError, match="2D"):
        AirModel().predict(np.zeros((3, 32, 32), np.float32) + np.arange(32))


def test_objects_add_at_least_the_minimum_contrast_onto_the_background():
    """Faint background texture cannot be explained by objects: each is >= min_contrast brighter."""
    net = NetConfig(min_contrast=0.2).build()
    contrast, _ = net.decoder(torch.randn(50, net.z_what_dim) * 3.0)
    assert float(contrast.min()) >= 0.2 and float(contrast.max()) <= 1.5
    background = torch.full((1, 1, 32, 32), 0.3)
    z_where, z_what = torch.zeros(1, 16, 5), torch.zeros(1, 16, net.z_what_dim)
    empty, _ = net.render(torch.zeros(1, 16), z_where, z_what, background)
    torch.testing.assert_close(empty, background)  # no object: the background alone
    full, _ = net.render(torch.ones(1, 16), z_where, z_what, background)
    assert float((full - background).min()) >= 0.0 and float((full - background).max()) >= 0.2
    with pytest.raises(ValueError, match="min_contrast"):
        NetConfig(min_contrast=2.0).build()


def test_the_guide_hands_its_encoder_outputs_to_the_model(monkeypatch):
    """One ELBO evaluation encodes once: the model observes the guide's codes, passed to it."""
    from napari_cellist.models.air.generative import EncoderPass

    model = AirModel()
    batch, anneal = _batch(model, supervised=True), Anneal(1.0, 0.5)
    calls = []
    encode = model.net.encode
    monkeypatch.setattr(model.net, "encode", lambda *a: calls.append(1) or encode(*a))
    encoded = EncoderPass()
    pyro.infer.Trace_ELBO().differentiable_loss(
        model.net.model, model.net.guide, batch, anneal, encoded
    )
    assert len(calls) == 1 and encoded.codes is not None
    assert not hasattr(model.net, "_cache")
