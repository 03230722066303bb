"""Cellpose training on small real crops (DSB2018 nuclei), stopping, checkpoints and the 3D path."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

import napari_cellist.models.cellpose_adapter as cpa
from napari_cellist.metrics import score_image
from napari_cellist.models.cellpose_adapter.training import prepare_planes
from napari_cellist.models.cellpose_adapter.weights import build_network
from napari_cellist.progress import drain
from napari_cellist.types import Progress, Sample

QUICK = cpa.CellposeTrainParams(
    start_from="auto", n_epochs=25, bsize=64, batch_size=8, images_per_epoch=8, diam_mean=17.0,
    validation_fraction=0.25, num_threads=2,
)  # fmt: skip
PARAMS = cpa.CellposeParams(model="cyto3", diameter=24.0, resample=False)

pytestmark = pytest.mark.slow  # trains Cellpose: deselect with -m "not slow"


@pytest.fixture(scope="module")
def crops(dsb):
    image, labels = dsb[0].astype(np.float32), dsb[1]
    quads = [(slice(r, r + 256), slice(c, c + 256)) for r in (0, 256) for c in (0, 256)]
    return [Sample(image[q], labels[q], name=f"q{i}") for i, q in enumerate(quads)]


@pytest.fixture(scope="module")
def trained(crops, tmp_path_factory):
    """(model, FitResult, progress reports, untrained AP50 on the validation crop)."""
    import torch

    mp = pytest.MonkeyPatch()
    mp.setenv("CELLPOSE_LOCAL_MODELS_PATH", str(tmp_path_factory.mktemp("no_weights")))
    model = cpa.CellposeModel(PARAMS)
    reports: list[Progress] = []
    result = drain(model.fit_iter(crops, QUICK), on_progress=reports.append)
    val = [s for s in crops if s.name not in result.data_used][0]
    torch.manual_seed(0)
    untrained = cpa.CellposeModel(PARAMS)
    untrained._network, untrained._network_spec = (
        build_network(None, 17.0),
        "cyto3",
    )  # random weights
    before = score_image(val.labels, untrained.predict(val.image).labels).ap50
    yield model, result, reports, before, val
    mp.undo()


def test_training_improves_validation_ap(trained):
    model, result, reports, before, val = trained
    assert [p.step for p in reports] == list(range(1, QUICK.n_epochs + 1))
    assert all(p.total == QUICK.n_epochs and p.loss is not None for p in reports)
    assert np.mean([p.loss for p in reports[-5:]]) < 0.8 * np.mean([p.loss for p in reports[:5]])
    assert result.params["start_from"] == "scratch"  # 'auto' without cyto3 weights
    assert len(result.data_used) == 3 and val.name not in result.data_used
    assert result.metrics["val_ap50"] > before + 0.3
    after = score_image(val.labels, model.predict(val.image).labels).ap50
    assert after == pytest.approx(result.metrics["val_ap50"])


def test_closing_the_generator_stops_and_writes_nothing(crops, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model = cpa.CellposeModel(PARAMS)
    small = [Sample(s.image[:96, :96], s.labels[:96, :96], name=s.name) for s in crops[:2]]
    gen = model.fit_iter(
        small,
        cpa.CellposeTrainParams(
            start_from="scratch", n_epochs=50, bsize=32, batch_size=2, validation_fraction=0.0
        ),
    )
    assert next(gen).step == 1 and next(gen).step == 2
    gen.close()
    assert list(tmp_path.iterdir()) == []
    net = model.network("").net
    assert not net.training and net.mkldnn is not False  # restored, ready to predict
    assert model.predict(crops[0].image[:64, :64]).labels.shape == (64, 64)


def test_checkpoint_round_trip_is_atomic_and_cellpose_compatible(trained, tmp_path):
    from cellpose import models

    model, _, _, _, val = trained
    path = model.save(tmp_path / "sub" / "cellpose.pth")
    assert sorted(p.name for p in path.parent.iterdir()) == ["cellpose.pth"]
    loaded = cpa.CellposeModel.load(path)
    assert loaded.params.diameter == 24.0 and loaded.params.model == str(path)
    np.testing.assert_array_equal(loaded.predict(val.image).labels, model.predict(val.image).labels)
    native = models.CellposeModel(gpu=False, pretrained_model=str(path))
    assert float(native.diam_mean) == 17.0 and 20 < float(native.diam_labels) < 30


def test_failed_save_leaves_no_file(trained, tmp_path, monkeypatch):
    import torch

    def broken_save(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        trained[0].save(tmp_path / "cellpose.pth")
    assert list(tmp_path.iterdir()) == []


def test_3d_stack_stitched_and_volumetric(trained):
    model, *_, val = trained
    crop = val.image[:128, :128]
    stack = np.stack(
        [np.roll(crop, z, axis=1) for z in range(4)]
    )  # (4, 128, 128), objects drift in x
    per_plane = model.predict(stack)
    stitched = model.predict(
        stack, cpa.CellposeParams(model="", diameter=24.0, stitch_threshold=0.25)
    )
    assert stitched.labels.shape == (4, 128, 128) and per_plane.count > 0
    assert 0 < stitched.count < per_plane.count  # objects joined across planes
    volume = model.predict(stack, cpa.CellposeParams(model="", diameter=24.0, do_3D=True))
    assert volume.labels.shape == (4, 128, 128) and volume.count > 0
    spans = [len(np.unique(np.nonzero(volume.labels == i)[0])) for i in volume.objects]
    assert max(spans) > 1  # 3D objects cover several planes


def test_3d_samples_train_on_their_planes(crops):
    volume = np.stack([crops[0].image[:64, :64]] * 3)
    labels = np.stack(
        [crops[0].labels[:64, :64], np.zeros((64, 64), np.int32), crops[0].labels[:64, :64]]
    )
    planes = prepare_planes(
        [Sample(volume, labels, name="vol")], 17.0, cpa.CellposeParams(), min_masks=1
    )
    assert len(planes) == 2 and planes.images[0].shape[0] == 2 and planes.flows[0].shape[0] == 3
    assert not planes.images[0][1].any()  # grey images: empty nucleus channel


def test_training_reads_the_channels_prediction_reads(crops):
    """A (C, Y, X) image with cells in channel 2 and nuclei in channel 1, as set in the dock."""
    cells = crops[0].image[:96, :96]
    nuclei = (crops[0].labels[:96, :96] > 0).astype(np.float32)
    image = np.stack([nuclei, cells, np.zeros_like(cells)])  # (C, Y, X)
    params = cpa.CellposeParams(channel_axis=0, channels=(2, 1))
    planes = prepare_planes([Sample(image, crops[0].labels[:96, :96])], 17.0, params, 1)
    cells_plane, nucleus_plane = planes.images[0]
    assert len(planes) == 1 and nucleus_plane.any()
    assert np.corrcoef(cells_plane.ravel(), nucleus_plane.ravel())[0, 1] > 0.5  # same nuclei
    with pytest.raises(ValueError, match="channel_axis"):
        prepare_planes([Sample(image, crops[0].labels[:96, :96])], 17.0, cpa.CellposeParams(), 1)


def test_time_budget_stops_training_and_keeps_the_best_validated_state(crops):
    from napari_cellist.models.cellpose_adapter import training

    params = cpa.CellposeParams(model="", diameter=24.0)
    small = [Sample(s.image[:128, :128], s.labels[:128, :128], name=s.name) for s in crops]
    train = prepare_planes(small[:2], 17.0, params, 1)
    val = prepare_planes(small[2:], 17.0, params, 1)
    tp = cpa.CellposeTrainParams(
        start_from="scratch", minutes=0.05, n_epochs=100_000, bsize=32, batch_size=2,
        images_per_epoch=2, validation_fraction=0.5, num_threads=1,
    )  # fmt: skip
    reports: list[Progress] = []
    losses = drain(
        training.train_epochs(build_network(None, 17.0).net, train, val, tp), reports.append
    )
    # no epoch starts once the 3 s are spent: only the last report is past the budget
    assert reports[-1].metrics["elapsed_s"] >= 3.0
    assert all(r.metrics["elapsed_s"] < 3.0 for r in reports[:-1])
    assert reports[-1].step == len(losses) == reports[-1].total < tp.n_epochs
    # the best validated state is kept (an epoch bound with a generous budget: every epoch
    # is validated, whatever the machine's load)
    net = build_network(None, 17.0).net
    bounded = replace(tp, minutes=100.0, n_epochs=6)
    reports = []
    drain(training.train_epochs(net, train, val, bounded), reports.append)
    val_losses = [r.metrics["val_loss"] for r in reports if "val_loss" in r.metrics]
    assert len(val_losses) == 6 and reports[-1].metrics["best_val_loss"] == min(val_losses)
    assert reports[-1].metrics["best_epoch"] == 1 + int(np.argmin(val_losses))
    again = training._batch_loss(net, *training._validation_batch(val, bounded))
    assert again == pytest.approx(min(val_losses), rel=1e-3)  # the network holds that state
    assert cpa.CellposeTrainParams().minutes == 10.0  # the default fits a CPU


def test_cellist_train_cellpose_stops_within_its_budget_and_saves(
    annotated_folder, tmp_path, monkeypatch, capsys
):
    import json

    from napari_cellist.cli import main

    monkeypatch.setenv("CELLPOSE_LOCAL_MODELS_PATH", str(tmp_path / "no_weights"))
    out = tmp_path / "cp.pth"
    code = main(
        ["train", "--model", "cellpose", "--data", str(annotated_folder), "--out", str(out),
         "--train-param", "minutes=0.05", "--device", "cpu"]
    )  # fmt: skip
    assert code == 0 and out.is_file()
    metrics = json.loads(capsys.readouterr().out)["metrics"]
    assert metrics["epochs"] < cpa.CellposeTrainParams().n_epochs  # the budget stopped it
    assert metrics["elapsed_s"] >= 3.0 and "val_ap50" in metrics
    assert cpa.CellposeModel.load(out).predict(np.zeros((64, 64), np.float32)).labels.shape == (
        64,
        64,
    )
