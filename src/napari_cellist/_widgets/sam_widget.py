"""*Segment Anything* dock widget: clicks and boxes -> live mask; accept / reject; whole image.

For an image layer ``NAME`` it keeps three prompt layers: ``NAME sam points`` (Points; green =
object, red = background), ``NAME sam box`` (Shapes rectangles; the last one is the box prompt)
and ``NAME sam preview`` (Labels). The embedding of the image (of the current plane for 3D
stacks) is computed in a worker as soon as the image or plane is selected, and cached.

Keys on the prompt layers: ``o`` object (positive) clicks, ``b`` background (negative) clicks,
``y`` accept the mask as a new object (Labels + Shapes + Points, source ``sam``), ``n`` reject.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import numpy as np
from magicgui.widgets import ComboBox, Container, FileEdit, PushButton
from superqt.utils import ensure_main_thread

from ..devices import DEVICE_CHOICES
from ..layers import (
    prediction_to_layer_tuples,
    set_layers,
)
from ..models import get_model_class
from ..models.base import WeightsNotFoundError
from ..models.sam.clicks import LatestClickWorker
from ..types import Prediction
from ._common import DockWidget, ImageLayerChoice, layer_pixels, role_layer, snapshot
from ._runner import JobRunner, StatusLine, notify_error, notify_info
from ._sam_layers import COLOURS, add_object, ensure_prompt_layers, prompt_layer_names, read_prompts
from .base_model import ask_file

logger = logging.getLogger(__name__)
POLARITY = ("object (o)", "background (b)")
DOWNLOAD = "sam/vit_b"  # the registry file the Download button fetches
NEEDS_WEIGHTS = (
    "SAM needs its weights: press 'Download SAM weights', or 'Choose weights file...' for a "
    "SAM checkpoint (.pth). Hover here for details."
)
BUTTONS = ("Accept (y)", "Reject (n)", "Segment everything", "Refine objects by their boxes")
TOOLTIPS = {
    "weights": "SAM checkpoint (.pth); empty = the cache folder ($CELLIST_SAM_CACHE or "
    "~/.cache/napari-cellist/sam).",
    "polarity": "Whether new points mark the object or the background (keys o / b).",
    "device": "Where SAM runs: auto = an NVIDIA GPU (cuda), else an Apple GPU (mps), else the CPU.",
    "Accept (y)": "Add the previewed mask as a new object (Labels, Shapes, Points; source sam).",
    "Reject (n)": "Clear the prompts and the preview.",
    "Segment everything": "SAM's automatic mask generator on the whole image.",
    "Refine objects by their boxes": "Replace every object of the image's labels by SAM's mask "
    "for its box.",
}


class SamWidget(DockWidget):
    """Interactive Segment Anything on the chosen image layer.

    Public actions: :meth:`accept`, :meth:`reject`, :meth:`segment_everything`,
    :meth:`refine_boxes`, :meth:`choose_weights`, :meth:`download_weights`,
    :meth:`request_embedding`.
    """

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__(napari_viewer, labels=False)
        self.model = get_model_class("sam")()
        self.image = ImageLayerChoice(self.viewer)
        self.checkpoint = FileEdit(label="weights", mode="r", value="", tooltip=TOOLTIPS["weights"])
        self.polarity = ComboBox(
            label="clicks add",
            choices=list(POLARITY),
            value=POLARITY[0],
            tooltip=TOOLTIPS["polarity"],
        )
        self.accept_button, self.reject_button, self.everything_button, self.refine_button = (
            PushButton(text=text, tooltip=TOOLTIPS[text]) for text in BUTTONS
        )
        self.choose_weights_button = PushButton(
            text="Choose weights file...", tooltip="Pick a SAM checkpoint (.pth)."
        )
        self.status = StatusLine()
        self.runner = JobRunner()
        self.download_button = PushButton(
            text="Download SAM weights (ViT-B)",
            tooltip="Download the official SAM checkpoint into the cache folder (once, ~375 MB).",
        )
        self.device = ComboBox(
            label="device", choices=list(DEVICE_CHOICES), value="auto", tooltip=TOOLTIPS["device"]
        )
        settings = [self.image, self.checkpoint, self.choose_weights_button, self.download_button]
        settings.extend([self.device, self.polarity])
        self.extend([Container(labels=True, widgets=settings)])
        self.extend([self.accept_button, self.reject_button, self.everything_button])
        self.extend([self.refine_button, self.status, self.runner])
        self.image.changed.connect(self._on_image_changed)
        self.checkpoint.changed.connect(self._on_image_changed)
        self.device.changed.connect(self._on_image_changed)
        self.polarity.changed.connect(self._on_polarity)
        self.accept_button.changed.connect(self.accept)
        self.reject_button.changed.connect(self.reject)
        self.everything_button.changed.connect(self.segment_everything)
        self.refine_button.changed.connect(self.refine_boxes)
        self.choose_weights_button.changed.connect(lambda: self.choose_weights())
        self.download_button.changed.connect(self.download_weights)
        self.listen(self.viewer.dims.events.current_step, self._on_plane_changed)
        self._embedded_for: tuple[str, int] | None = None  # image and plane of the embedding
        self._requested: tuple[str, int] | None = None
        self.segmenter: Any = None  # PromptableSegmenter holding the current embedding
        self._pending = False
        self._n_points = 0
        self.last_result: Any = None
        # clicks are decoded off the GUI thread, the latest click wins (CELLIST_SYNC: inline)
        self._clicks = LatestClickWorker(
            self._decode_click,
            ensure_main_thread(self._show_click),
            synchronous=os.environ.get("CELLIST_SYNC") == "1",
        )
        self.fit_labels()
        self.explain_needs()

    def explain_needs(self) -> str | None:
        """Say in the widget what SAM still needs (weights, an image); None when it has both."""
        from ..models.sam.weights import resolve_checkpoint

        need, details = None, ""
        try:
            resolve_checkpoint(self._params().checkpoint or None)
        except (WeightsNotFoundError, ValueError) as err:
            need, details = NEEDS_WEIGHTS, str(err)
        if need is None and not self.image.value:
            need = "SAM needs an image: open one (File > Open, or File > Open Sample > Cellist)."
        from ..downloads import is_offline

        self.choose_weights_button.visible = need == NEEDS_WEIGHTS
        self.download_button.visible = need == NEEDS_WEIGHTS and not is_offline()
        if need is not None:
            self.status.say(need)
            self.status.tooltip = details or need
        return need

    def download_weights(self) -> bool:
        """Download SAM's checkpoint in the background, then use it; False if it did not start."""
        from ..downloads import fetch_iter

        if self.runner.busy:
            notify_error("Another job is still running: wait for it or press Stop.")
            return False
        self.status.say(f"downloading {DOWNLOAD}...")
        self.runner.run(
            lambda: fetch_iter(DOWNLOAD),
            on_done=lambda path: self.choose_weights(str(path)),
            on_error=lambda _err: self.explain_needs(),
        )
        return True

    def choose_weights(self, path: str | None = None) -> str:
        """Use a SAM checkpoint (asked for in a dialog when ``path`` is None); returns the path."""
        path = path if path is not None else ask_file(self.native, "SAM checkpoint (.pth)")
        if path:
            self.checkpoint.value = path  # embeds the chosen image
        return path

    # -- model and embedding -------------------------------------------------------------------
    def _params(self) -> Any:
        from dataclasses import replace

        text = str(self.checkpoint.value)
        checkpoint = "" if text in ("", ".") else text
        return replace(self.model.params, checkpoint=checkpoint, device=str(self.device.value))

    def _plane(self) -> tuple[np.ndarray, bool, int]:
        """Pixels SAM sees: the 2D image, or the current plane of a 3D stack; rgb flag; plane."""
        layer = self.image.layer()
        data = layer_pixels(layer)
        spatial = data.ndim - (1 if layer.rgb else 0)
        if spatial == 2:
            return data, bool(layer.rgb), 0
        if spatial != 3:
            raise ValueError(
                f"SAM works on 2D images and 3D stacks; {layer.name} has shape {data.shape}."
            )
        z = int(self.viewer.dims.current_step[-3]) if self.viewer.dims.ndim >= 3 else 0
        return data[min(z, data.shape[0] - 1)], bool(layer.rgb), z

    def _on_image_changed(self, _value: Any = None) -> None:
        self._embedded_for = None
        self._requested = None
        if self.explain_needs() is None:
            self.request_embedding()

    def _on_plane_changed(self, _event: Any = None) -> None:
        if self._requested is None:  # nothing asked for yet (e.g. no weights chosen)
            return
        try:
            _, _, z = self._plane()
        except ValueError:
            return
        if (self.image.value, z) != self._requested:
            self.request_embedding()

    def request_embedding(self) -> None:
        """Compute (or fetch from the cache) the embedding of the current image / plane."""
        if self.runner.busy:
            self._pending = True
            return
        try:
            plane, rgb, z = self._plane()
        except ValueError as err:
            self.status.say(str(err))
            return
        params, target = self._params(), (self.image.value, z)
        self._requested = target
        self._ensure_prompt_layers()  # GUI work before the worker starts, not while it runs

        def job():
            # loads the weights (once per checkpoint) off the GUI thread, then embeds
            segmenter = self.model.interactive_for(params)
            return (yield from segmenter.embed_iter(plane, rgb))

        self.status.say("computing the SAM embedding...")
        self.runner.run(
            job,
            on_done=lambda emb: self._on_embedded(emb, params, target),
            on_finally=self._after_job,
            on_error=lambda _err: self.explain_needs(),
        )

    def _on_embedded(self, embedding: Any, params: Any, target: tuple[str, int]) -> None:
        self.model.params = params
        self.segmenter = self.model.interactive_for(params)  # the one the embedding belongs to
        self.segmenter.set_embedding(embedding)
        self._embedded_for = target
        plane = f" (plane {target[1]})" if target[1] else ""
        self.status.say(f"ready: click on {target[0]}{plane}")
        self.last_result = None
        self._n_points = 0

    def _after_job(self) -> None:
        if self._pending:
            self._pending = False
            self.request_embedding()
        elif self._embedded_for is not None and self._embedded_for[0] == self.image.value:
            self._on_prompts_changed()  # prompts given while the worker ran

    # -- prompt layers ---------------------------------------------------------------------------
    def _names(self) -> dict[str, str]:
        return prompt_layer_names(self.image.value)

    def _ensure_prompt_layers(self) -> None:
        for layer in ensure_prompt_layers(
            self.viewer, self.image.layer(), self._on_prompts_changed
        ):
            self._bind_keys(layer)

    def _bind_keys(self, layer: Any) -> None:
        layer.bind_key("o", lambda _layer: self._set_polarity(True), overwrite=True)
        layer.bind_key("b", lambda _layer: self._set_polarity(False), overwrite=True)
        layer.bind_key("y", lambda _layer: self.accept(), overwrite=True)
        layer.bind_key("n", lambda _layer: self.reject(), overwrite=True)

    def _set_polarity(self, positive: bool) -> None:
        self.polarity.value = POLARITY[0 if positive else 1]

    def _on_polarity(self, value: str) -> None:
        positive = value == POLARITY[0]
        name = self._names()["points"]
        if name in self.viewer.layers:
            layer = self.viewer.layers[name]
            # napari recolours the selected points with the current colour: after an accept
            # the selection may name points that no longer exist (IndexError)
            layer.selected_data = set()
            layer.feature_defaults = {"positive": positive}
            layer.current_face_color = COLOURS[positive]

    def _on_prompts_changed(self, _event: Any = None) -> None:
        if self._embedded_for is None or self.runner.busy:
            return
        try:
            points, labels, box = read_prompts(self.viewer, self._names(), self._embedded_for[1])
        except (KeyError, ValueError) as err:
            logger.debug("No SAM prompts: %s", err)
            return
        preview = self.viewer.layers[self._names()["preview"]]
        if len(points) == 0 and box is None:
            self._clear_preview(preview)
            return
        more_clicks = len(points) > self._n_points and self.last_result is not None
        self._n_points = len(points)
        segmenter, target = self.segmenter, self._embedded_for
        self._clicks.submit((segmenter, target, points, labels, box, more_clicks))

    @staticmethod
    def _decode_click(request: tuple) -> Any:
        """Worker thread: SAM's mask for one click (the newest; older pending ones dropped)."""
        segmenter, _, points, labels, box, more_clicks = request
        return segmenter.predict(points, labels, box, refine=more_clicks)

    def _show_click(self, outcome: Any) -> None:
        """GUI thread: show a decoded click unless the image changed meanwhile."""
        segmenter, target = outcome.request[:2]
        if segmenter is not self.segmenter or target != self._embedded_for:
            return
        if outcome.error is not None:
            notify_error(str(outcome.error))
            return
        self.last_result = outcome.result
        preview = self.viewer.layers[self._names()["preview"]]
        plane = np.zeros(preview.data.shape[-2:], np.int32)
        plane[self.last_result.mask] = 1
        self._write_plane(preview, plane)
        self.status.say(
            f"SAM mask: {int(self.last_result.mask.sum())} px, predicted IoU {self.last_result.score:.2f} (y accept, n reject)"
        )

    def _write_plane(self, layer: Any, plane: np.ndarray) -> None:
        data = layer.data
        if data.ndim == 3:
            data[self._embedded_for[1]] = plane
        else:
            data[...] = plane
        layer.refresh()

    def _clear_preview(self, preview: Any) -> None:
        preview.data[...] = 0
        preview.refresh()
        self.last_result = None
        self._n_points = 0
        if self.segmenter is not None:
            self.segmenter.reset_prompts()

    # -- accept / reject -------------------------------------------------------------------------
    def reject(self) -> None:
        """Clear the prompts and the preview."""
        if self._embedded_for is None:
            return
        names = self._names()
        for key in ("points", "box"):
            if names[key] in self.viewer.layers:
                layer = self.viewer.layers[names[key]]
                layer.selected_data = set()
                layer.data = []
        if names["preview"] in self.viewer.layers:
            self._clear_preview(self.viewer.layers[names["preview"]])

    def accept(self) -> int | None:
        """Write the previewed mask as a new object (source ``sam``); returns its id."""
        if self.last_result is None or not self.last_result.mask.any():
            notify_error("Nothing to accept: click on an object (or draw a box) first.")
            return None
        name, z = self._embedded_for
        preview_shape = self.viewer.layers[self._names()["preview"]].data.shape
        new_id = add_object(
            self.viewer,
            self.session,
            name,
            preview_shape,
            z,
            self.last_result.mask,
            self.last_result.score,
        )
        self.reject()
        notify_info(f"Added object {new_id} to {name}.")
        return new_id

    # -- whole image ---------------------------------------------------------------------------
    def segment_everything(self) -> None:
        """SAM's automatic mask generator on the whole image (in the background)."""
        self._run_whole_image(refine=False)

    def refine_boxes(self) -> None:
        """Replace every object of the image's labels by SAM's mask for its box."""
        self._run_whole_image(refine=True)

    def _run_whole_image(self, refine: bool) -> None:
        try:
            layer = self.image.layer()
            data = layer_pixels(layer)
            prompts = None
            if refine:
                labels_layer = role_layer(self.viewer, layer.name, "labels")
                if labels_layer is None:
                    raise ValueError(
                        f"{layer.name} has no objects to refine: run a base model first."
                    )
                prompts = np.asarray(labels_layer.data, np.int32)
            params = self._params()
        except (ValueError, WeightsNotFoundError) as err:
            notify_error(str(err))
            return
        name, rgb = layer.name, bool(layer.rgb)
        scale = tuple(layer.scale)[-(data.ndim - rgb) :]
        self.runner.run(
            lambda: self.model.predict_iter(data, params, prompt_labels=prompts, rgb=rgb),
            on_done=lambda prediction: self._show(prediction, name, scale),
            on_finally=self._after_job,
        )

    def _show(self, prediction: Prediction, image_name: str, scale: tuple[float, ...]) -> None:
        tuples = prediction_to_layer_tuples(
            prediction, image_name, scale=scale, tolerance=self.session.tolerance
        )
        set_layers(self.viewer, tuples)
        self.session.record_prediction(image_name, prediction)
        snapshot(self.viewer, self.session, image_name)
        notify_info(f"sam: {prediction.count} objects in {image_name}.")
