"""The registered ``sam`` base model: automatic segmentation or box refinement of a label map."""

from __future__ import annotations

import logging
from collections.abc import Generator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ...devices import release_device_memory, resolve_device
from ...diameters import diameter_from_image
from ...progress import relay
from ...types import ObjectMeta, Prediction, Progress
from ..base import Segmenter
from .params import SamParams

logger = logging.getLogger(__name__)


class SamModel(Segmenter):
    """Segment Anything as a base model.

    ``predict_iter(image, params)`` segments everything; ``predict_iter(image, params,
    prompt_labels=labels)`` replaces every object of ``labels`` by SAM's mask for its box.
    :attr:`interactive` gives the :class:`~.interactive.PromptableSegmenter` for clicks.
    """

    name: ClassVar[str] = "sam"
    Params: ClassVar[type] = SamParams

    def __init__(self, params: SamParams | None = None) -> None:
        super().__init__(params)
        self._loaded: tuple[tuple[Any, ...], Any] | None = None

    @classmethod
    def from_checkpoint(cls, path: str | Path, params: SamParams | None = None) -> SamModel:
        """Model using the checkpoint ``path`` (loaded now, so a bad file fails here)."""
        model = cls(replace(params or SamParams(), checkpoint=str(path)))
        model.interactive_for(model.params)
        return model

    @property
    def interactive(self) -> Any:
        """The :class:`~.interactive.PromptableSegmenter` of the current parameters."""
        return self.interactive_for(self.params)

    def load_iter(self, params: SamParams | None = None) -> Generator[Progress, None, Any]:
        """Download the checkpoint if it is a registry name not yet on disk (progress, Stop),
        then load it: returns the promptable segmenter."""
        from .weights import ensure_checkpoint_iter

        params = params or self.params
        if self._loaded is None or self._loaded[0] != self._key(params):
            yield from ensure_checkpoint_iter(params.checkpoint or None, params.model_type)
        return self.interactive_for(params)

    def downloads_needed(self, params: SamParams | None = None) -> tuple[str, ...]:
        """The registry name of the checkpoint when it is a model name (``vit_b``, ``vit_b_lm``...)."""
        from .weights import registry_name

        params = params or self.params
        name = registry_name(params.checkpoint or None, params.model_type)
        return (name,) if name else ()

    @staticmethod
    def _key(params: SamParams) -> tuple[Any, ...]:
        return (
            params.checkpoint,
            params.model_type,
            params.tile_overlap,
            params.disk_cache,
            str(resolve_device(params.device)),
        )

    def interactive_for(self, params: SamParams) -> Any:
        """Load (once per checkpoint/tiling/device) and return the promptable segmenter."""
        from .embeddings import EmbeddingCache
        from .interactive import PromptableSegmenter
        from .weights import cache_dir, load_sam

        key = self._key(params)
        if self._loaded is None or self._loaded[0] != key:
            sam, model_id = load_sam(
                params.checkpoint or None, params.model_type, resolve_device(params.device)
            )
            folder = cache_dir() / "embeddings" if params.disk_cache else None
            segmenter = PromptableSegmenter(
                sam, model_id, EmbeddingCache(folder), overlap=params.tile_overlap
            )
            self._loaded = (key, segmenter)
        return self._loaded[1]

    def predict_iter(
        self,
        image: np.ndarray,
        params: SamParams | None = None,
        *,
        prompt_labels: np.ndarray | None = None,
        classes: Mapping[int, str] | None = None,
        rgb: bool = False,
    ) -> Generator[Progress, None, Prediction]:
        """Segment everything, or refine ``prompt_labels``; 3D stacks slice by slice.

        Parameters
        ----------
        image : np.ndarray
            Grey ``(Y, X)`` / ``(Z, Y, X)`` of any real dtype, or ``(Y, X, 3|4)`` when ``rgb``.
        params : SamParams, optional
            Overrides the model's parameters.
        prompt_labels : np.ndarray, optional
            int label map of the image's spatial shape whose objects' boxes are the prompts.
        classes : mapping, optional
            ``{label_id: class}`` of ``prompt_labels``, kept on the refined objects.
        rgb : bool
            The last axis of ``image`` holds colours.
        """
        params = params or self.params
        segmenter = yield from self.load_iter(params)
        try:
            return (yield from self._predict(segmenter, image, params, prompt_labels, classes, rgb))
        finally:
            release_device_memory(resolve_device(params.device))

    def _predict(
        self,
        segmenter: Any,
        image: np.ndarray,
        params: SamParams,
        prompt_labels: np.ndarray | None,
        classes: Mapping[int, str] | None,
        rgb: bool,
    ) -> Generator[Progress, None, Prediction]:
        from .automatic import AutomaticParams, refine_boxes_iter, segment_everything_iter

        image = np.asarray(image)
        spatial = image.shape[:-1] if rgb else image.shape
        planes = image[None] if len(spatial) == 2 else image
        if prompt_labels is not None and tuple(np.shape(prompt_labels)) != tuple(spatial):
            raise ValueError(
                f"prompt_labels {prompt_labels.shape} must match the image's spatial shape {image.shape}."
            )
        prompts = (
            None
            if prompt_labels is None
            else np.asarray(prompt_labels).reshape((-1,) + planes.shape[1:3])
        )
        auto = AutomaticParams(
            points_per_side=params.points_per_side,
            points_per_batch=params.points_per_batch,
            pred_iou_thresh=params.pred_iou_thresh,
            stability_score_thresh=params.stability_score_thresh,
            min_mask_region_area=params.min_mask_region_area,
        )
        results = []
        for z, plane in enumerate(planes):
            prefix = f"plane {z + 1}/{len(planes)}: " if len(planes) > 1 else ""
            if prompts is None:
                plan = self.plan(plane, params, rgb, segmenter.sam)
                logger.info("%s", plan.describe())
                yield Progress(0, plan.n_tiles, prefix + plan.describe())
                yield from relay(
                    segmenter.set_image_iter(plane, rgb, plan.tile_size, plan.overlap),
                    prefix=prefix,
                )
                job = segment_everything_iter(
                    segmenter, replace(auto, points_per_side=plan.points_per_side)
                )
            else:
                yield from relay(segmenter.set_image_iter(plane, rgb), prefix=prefix)
                job = refine_boxes_iter(segmenter, prompts[z], classes)
            results.append((yield from relay(job, prefix=prefix)))
        return results[0] if len(spatial) == 2 else _stack(results)

    @staticmethod
    def plan(image: np.ndarray, params: SamParams, rgb: bool, sam: Any) -> Any:
        """The :class:`~.automatic.EverythingPlan` (tiles, prompts, estimated seconds) of a 2D
        ``image`` with ``sam``; the object diameter is ``params.diameter`` or estimated."""
        from .automatic import estimate_plan, plan_everything

        grey = np.asarray(image, np.float32)
        grey = grey[..., :3].mean(axis=-1) if rgb else grey
        diameter = params.diameter or diameter_from_image(grey)
        plan = plan_everything(
            grey.shape, diameter, int(sam.image_encoder.img_size), params.points_per_side
        )
        return estimate_plan(plan, sam)

    def refine_iter(
        self, image: np.ndarray, prompt_labels: np.ndarray, params: SamParams | None = None
    ) -> Generator[Progress, None, Prediction]:
        """Replace every object of ``prompt_labels`` by SAM's mask for its box (see
        :meth:`predict_iter`); what ``cellist predict --prompts-from DIR`` runs."""
        return self.predict_iter(image, params, prompt_labels=prompt_labels)


def _stack(results: list[Prediction]) -> Prediction:
    """3D Prediction from per-plane ones; ids are offset so that they stay unique."""
    labels = np.zeros((len(results),) + results[0].labels.shape, np.int32)
    objects: dict[int, ObjectMeta] = {}
    offset = 0
    for z, result in enumerate(results):
        plane = result.labels
        labels[z] = np.where(plane > 0, plane + offset, 0)
        for label_id, meta in result.objects.items():
            box = meta.box
            new_box = (z, box[0], box[1], z + 1, box[2], box[3]) if len(box) == 4 else ()
            objects[label_id + offset] = replace(meta, label_id=label_id + offset, box=new_box)
        offset = int(labels[z].max(initial=offset))
    return Prediction(labels=labels, objects=objects, source="sam")
