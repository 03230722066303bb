"""The Segment Anything dock widget on a real napari viewer, with a tiny random SAM."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch  # noqa: F401

from napari_cellist._widgets._session import set_session  # noqa: E402
from napari_cellist.models.sam import architecture, weights  # noqa: E402
from napari_cellist.models.sam.interactive import MaskResult, PromptableSegmenter  # noqa: E402
from napari_cellist.session import LabellingSession  # noqa: E402


@pytest.fixture
def cells():
    grey = np.full((96, 128), 20, np.uint16)
    grey[20:50, 70:110] = 900
    grey[60:90, 10:40] = 600
    return grey


@pytest.fixture
def setup(make_napari_viewer, tmp_path, monkeypatch, cells, dock, notifications):
    monkeypatch.setenv("CELLIST_SYNC", "1")
    monkeypatch.setenv(weights.CACHE_ENV, str(tmp_path / "cache"))
    checkpoint = architecture.write_random_checkpoint(tmp_path / "tiny.pth")
    viewer = make_napari_viewer()
    set_session(viewer, LabellingSession(tmp_path / "project"))
    viewer.add_image(cells, name="cells")
    widget = dock(viewer, "Segment Anything")
    widget.image.value = "cells"
    # without weights the widget says what it needs and offers to pick the file
    assert "SAM needs its weights" in widget.status.value
    assert not widget.choose_weights_button.native.isHidden()
    widget.choose_weights(str(checkpoint))  # loads the weights and embeds the image
    assert widget.choose_weights_button.native.isHidden()
    return viewer, widget, checkpoint, notifications


def _reference(checkpoint, image):
    sam, model_id = weights.load_sam(checkpoint)
    seg = PromptableSegmenter(sam, model_id)
    seg.set_image(image)
    return seg


def test_embedding_on_selection_and_prompt_layers(setup):
    viewer, widget, _, shown = setup
    assert widget._embedded_for == ("cells", 0) and shown.errors == []
    for suffix in ("sam points", "sam box", "sam preview"):
        assert f"cells {suffix}" in viewer.layers
    assert len(list(widget.segmenter.cache.folder.glob("*.npz"))) == 1


def test_points_refinement_and_box_match_the_model(setup, cells):
    viewer, widget, checkpoint, shown = setup
    reference = _reference(checkpoint, cells)
    points = viewer.layers["cells sam points"]
    preview = viewer.layers["cells sam preview"]
    points.add([30, 90])
    first = reference.predict([[30, 90]])
    assert np.array_equal(preview.data > 0, first.mask)
    widget.polarity.value = "background (b)"
    points.add([70, 20])
    assert list(points.features["positive"]) == [True, False]
    second = reference.predict([[30, 90], [70, 20]], [1, 0], refine=True)  # reuses first's logits
    assert np.array_equal(preview.data > 0, second.mask)
    widget.reject()
    assert len(points.data) == 0 and not preview.data.any()
    viewer.layers["cells sam box"].add_rectangles(np.array([[20, 70], [49.6, 109.6]]))
    reference.reset_prompts()
    boxed = reference.predict(box=(20, 70, 50, 110))
    assert np.array_equal(preview.data > 0, boxed.mask) and shown.errors == []


def test_accept_writes_one_sam_object_into_three_layers_and_reject_clears(setup):
    viewer, widget, _, shown = setup
    mask = np.zeros((96, 128), bool)
    mask[22:48, 72:108] = True
    widget.last_result = MaskResult(mask, 0.9, np.zeros((1, 32, 32), np.float32), 0)
    new_id = widget.accept()
    labels = viewer.layers["cells labels"].data
    shapes = viewer.layers["cells polygons"]
    assert new_id == 1 and np.array_equal(labels == 1, mask)
    assert (
        list(shapes.features["source"]) == ["sam"] and len(viewer.layers["cells centres"].data) == 1
    )
    widget.last_result = MaskResult(np.roll(mask, 40, axis=0), 0.8, np.zeros((1, 32, 32)), 0)
    assert widget.accept() == 2
    assert set(np.unique(viewer.layers["cells labels"].data)) == {0, 1, 2}
    assert widget.last_result is None  # accepted: prompts and preview cleared
    assert widget.accept() is None and "Nothing to accept" in shown.errors[-1]
    keys = {str(k) for k in viewer.layers["cells sam points"].keymap}
    assert {"O", "B", "Y", "N"} <= {k.upper() for k in keys}


def test_background_key_after_an_accept(setup):
    """``b`` right after ``y`` (the clicked point selected, then removed) raises nothing."""
    viewer, widget, _, shown = setup
    points = viewer.layers["cells sam points"]
    points.add([30, 90])
    points.selected_data = {0}
    assert widget.accept() is not None and len(points.data) == 0
    widget._set_polarity(False)  # what the b key does
    points.add([70, 20])
    assert list(points.features["positive"]) == [False] and shown.errors == []


def test_segment_everything_and_box_refinement_fill_the_layers(setup):
    viewer, widget, _, shown = setup
    widget.model.params = replace(
        widget.model.params, points_per_side=4, pred_iou_thresh=0.0, stability_score_thresh=0.0
    )
    widget.segment_everything()
    labels = viewer.layers["cells labels"].data
    assert labels.shape == (96, 128) and labels.max() > 0
    assert set(viewer.layers["cells polygons"].features["source"]) == {"sam"}
    prompts = np.zeros((96, 128), np.int32)
    prompts[20:50, 70:110] = 5
    viewer.layers["cells labels"].data = prompts
    widget.refine_boxes()
    assert set(np.unique(viewer.layers["cells labels"].data)) == {0, 5} and shown.errors == []


def test_stacks_are_embedded_slice_by_slice(setup, cells):
    viewer, widget, _, shown = setup
    viewer.add_image(np.stack([cells, cells[::-1], cells[:, ::-1]]), name="stack")
    widget.image.value = "stack"
    assert widget._embedded_for == ("stack", 0)
    viewer.dims.set_current_step(0, 2)
    assert widget._embedded_for == ("stack", 2)
    viewer.layers["stack sam points"].add([2, 30, 90])
    preview = viewer.layers["stack sam preview"].data
    assert preview.shape == (3, 96, 128) and not preview[:2].any()
    assert np.array_equal(preview[2] > 0, widget.last_result.mask) and shown.errors == []


def test_rgb_images_are_prompted_in_colour(setup, cells, monkeypatch):
    viewer, widget, checkpoint, shown = setup
    colour = np.stack([cells, cells // 2, cells[::-1]], axis=-1).astype(np.float32)
    viewer.add_image(colour, name="colour", rgb=True)
    widget.image.value = "colour"
    assert widget._embedded_for == ("colour", 0)
    viewer.layers["colour sam points"].add([60, 20])
    sam, model_id = weights.load_sam(checkpoint)
    reference = PromptableSegmenter(sam, model_id)
    reference.set_image(colour, rgb=True)
    expected = reference.predict([[60, 20]]).mask
    assert (
        np.array_equal(viewer.layers["colour sam preview"].data > 0, expected)
        and shown.errors == []
    )


def test_download_button_fetches_the_weights_and_embeds(
    make_napari_viewer, tmp_path, monkeypatch, cells, dock, notifications
):
    from napari_cellist import downloads
    from napari_cellist.types import Progress

    monkeypatch.setenv("CELLIST_SYNC", "1")
    monkeypatch.setenv(weights.CACHE_ENV, str(tmp_path / "cache"))
    checkpoint = architecture.write_random_checkpoint(tmp_path / "tiny.pth")
    fetched = []

    def fake_fetch_iter(name):  # the network stays out of the test: the file is "downloaded"
        fetched.append(name)
        yield Progress(1, 1, "downloading")
        return checkpoint

    monkeypatch.setattr(downloads, "fetch_iter", fake_fetch_iter)
    monkeypatch.delenv(downloads.OFFLINE_ENV, raising=False)  # tests run offline by default
    viewer = make_napari_viewer()
    set_session(viewer, LabellingSession(tmp_path / "project"))
    viewer.add_image(cells, name="cells")
    widget = dock(viewer, "Segment Anything")
    assert not widget.download_button.native.isHidden()
    assert widget.download_weights()
    assert fetched == ["sam/vit_b"] and widget._embedded_for == ("cells", 0)
    assert widget.download_button.native.isHidden() and notifications.errors == []
    monkeypatch.setenv(downloads.OFFLINE_ENV, "1")
    widget.checkpoint.value = str(tmp_path / "missing.pth")
    assert widget.download_button.native.isHidden()  # offline: only "Choose weights file..."
    assert not widget.choose_weights_button.native.isHidden()
