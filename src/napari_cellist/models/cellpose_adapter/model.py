"""CellposeModel: Cellpose 3 as a napari-cellist model (predict, train, save, load)."""

from __future__ import annotations

import json
import logging
from collections.abc import Generator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ...borders import crop_border, crop_labels, mirror_border, mirror_width
from ...devices import device_job, release_device_memory, resolve_device
from ...downloads import REGISTRY
from ...io.writers import atomic_open
from ...metrics import score_images
from ...progress import drain, relay
from ...splits import split_validation
from ...types import FitResult, Prediction, Progress, Sample
from ..base import TrainableSegmenter, WeightsNotFoundError, params_from_mapping, params_to_dict
from . import inference, training
from .params import CellposeParams, CellposeTrainParams
from .weights import (
    KNOWN_NAMES,
    ResolvedWeights,
    build_network,
    ensure_weights_iter,
    resolve_weights,
    size_filename,
)

logger = logging.getLogger(__name__)

PARAMS_KEY = "napari_cellist.params_json"  # extra state-dict entry; Cellpose ignores it


class CellposeModel(TrainableSegmenter):
    """Cellpose 3 (CPnet: ``cyto3``, ``nuclei``, custom) on the chosen device (``params.device``).

    ``params.model`` chooses the network: a pretrained name found in Cellpose's model folder, a
    model file, or ``""`` for the network this object holds (trained by :meth:`fit_iter` or loaded
    by :meth:`load`). A missing pretrained file is downloaded (verified) by :meth:`predict_iter`
    before Cellpose is asked to build anything; offline, :class:`WeightsNotFoundError` says where
    to put it.
    """

    name: ClassVar[str] = "cellpose"
    Params: ClassVar[type] = CellposeParams
    TrainParams: ClassVar[type] = CellposeTrainParams

    def __init__(self, params: CellposeParams | None = None) -> None:
        super().__init__(params)
        self._network: Any = None  # cellpose.models.CellposeModel
        self._network_spec: str | None = None
        self._weights: ResolvedWeights | None = None

    # ------------------------------------------------------------------ prediction
    def predict_iter(
        self, image: np.ndarray, params: CellposeParams | None = None
    ) -> Generator[Progress, None, Prediction]:
        """Segment a grey ``(Y, X)`` / ``(Z, Y, X)`` image (or one with ``params.channel_axis``).

        Yields Progress (network, diameter, masks) and returns a Prediction whose object scores are
        the mean Cellpose cell probability inside each object; ``extras["probability"]`` holds the
        probability map.

        Raises
        ------
        WeightsNotFoundError
            The chosen weights are not on this computer (the message says where to put them).
        """
        params = params or self.params
        yield from self._download_iter(params.model)
        yield Progress(1, 4, "loading the Cellpose network")
        try:
            prediction = yield from self._predict(image, params)
        finally:
            release_device_memory(self._device(params))
        return prediction

    def _predict(
        self, image: np.ndarray, params: CellposeParams
    ) -> Generator[Progress, None, Prediction]:
        network = self.network(params.model, params.device)
        x = inference.cellpose_input(image, params)
        if params.do_3D and x.ndim != 4:
            raise ValueError("3D mode needs a (Z, Y, X) stack; turn 'do_3D' off for a 2D image.")
        yield Progress(2, 4, "finding the object diameter")
        diameter = inference.resolve_diameter(x, params, network, self._weights)
        yield Progress(3, 4, f"running Cellpose (diameter {diameter:.1f} px)")
        margin = mirror_width(diameter, params.border_mirror, x.shape[-3:-1])
        x = mirror_border(x, margin, yx_axes=(-3, -2))
        masks, cellprob = inference.run_eval(
            network, x, inference.eval_kwargs(params, diameter, x.ndim)
        )
        masks = crop_labels(masks, margin)[0]
        cellprob = None if cellprob is None else crop_border(cellprob, margin)
        prediction = inference.to_prediction(masks, cellprob)
        yield Progress(4, 4, f"{prediction.count} objects")
        return prediction

    def downloads_needed(self, params: CellposeParams | None = None) -> tuple[str, ...]:
        """``("cellpose/<name>", "cellpose/size_...")`` for a pretrained name (size model optional)."""
        spec = (params or self.params).model.strip()
        if spec not in KNOWN_NAMES:
            return ()
        size = f"cellpose/{size_filename(spec)}"
        return (f"cellpose/{spec}",) + ((size,) if size in REGISTRY else ())

    def _download_iter(self, spec: str) -> Generator[Progress, None, None]:
        """Fetch a missing pretrained network (first use), yielding download progress."""
        if spec and (self._network is None or spec != self._network_spec):
            yield from ensure_weights_iter(spec)

    def _device(self, params: CellposeParams | None = None) -> Any:
        return resolve_device((params or self.params).device)

    def network(self, spec: str | None = None, device: str | None = None) -> Any:
        """The ``cellpose.models.CellposeModel`` for ``spec`` (default ``params.model``) on the
        chosen device (default ``params.device``), cached; a held network moves to the device."""
        spec = self.params.model if spec is None else str(spec)
        target = resolve_device(self.params.device if device is None else device)
        if self._network is not None and spec in ("", self._network_spec):
            return self._moved(target)
        if not spec:
            raise WeightsNotFoundError(
                "This Cellpose model has no network yet: choose a pretrained name or a model file "
                "in 'model', or train it first (Fine-tune / cellist train)."
            )
        weights = resolve_weights(spec)
        network = build_network(weights, device=target)
        self._network, self._network_spec, self._weights = network, spec, weights
        return self._network

    def _moved(self, device: Any) -> Any:
        """The held network on ``device`` (Cellpose keeps its device in ``.device``/``.gpu``)."""
        network = self._network
        if network.device != device:
            network.net.to(device)
            network.device, network.gpu = device, device.type != "cpu"
            if getattr(network, "net_ortho", None) is not None:
                network.net_ortho.to(device)
        return network

    # ------------------------------------------------------------------ training
    def fit_iter(
        self, samples: Sequence[Sample], train_params: CellposeTrainParams | None = None
    ) -> Generator[Progress, None, FitResult]:
        """Train on annotated samples, one Progress (loss, val_loss) per epoch.

        A ``validation_fraction`` of the annotated samples is held out and scored (AP50, mean AP,
        count error) with the trained network at the end. Closing the generator stops training
        after the current epoch; the model then keeps the weights of the last finished epoch
        (batch-norm statistics re-estimated, ready to predict) and nothing is written to disk.
        """
        tp = train_params or CellposeTrainParams()
        with device_job(self.params.device, tp.num_threads):
            return (yield from self._fit(samples, tp))

    def _fit(
        self, samples: Sequence[Sample], tp: CellposeTrainParams
    ) -> Generator[Progress, None, FitResult]:
        import torch

        annotated = training.with_objects(samples)
        train_set, val_set = split_validation(annotated, tp.validation_fraction, tp.seed)
        network, started_from = self._starting_network(tp)
        diam_mean = float(network.diam_mean)
        # the images are read as prediction reads them: the same channels, the same inversion
        train = training.prepare_planes(train_set, diam_mean, self.params, tp.min_train_masks)
        val = training.prepare_planes(val_set, diam_mean, self.params, 1) if val_set else None
        diam_labels = float(np.mean(train.diameters))
        network.net.diam_labels.data = torch.tensor(
            [diam_labels], dtype=torch.float32, device=network.device
        )
        network.diam_labels = diam_labels
        self._network, self._network_spec, self._weights = network, "", None
        self.params = replace(self.params, model="")
        history: list[Progress] = []
        losses = yield from relay(
            training.train_epochs(network.net, train, val, tp), history.append
        )
        metrics = {
            "train_loss": losses[-1],
            "n_train_planes": float(len(train)),
            "epochs": float(len(losses)),
            **{k: v for k, v in history[-1].metrics.items() if k.startswith(("best_", "elapsed"))},
        }
        if val_set:
            metrics.update(self._validation_scores(val_set))
        params = {
            **params_to_dict(self.params),
            "start_from": started_from,
            "diam_labels": diam_labels,
        }
        names = tuple(s.name for s in train_set)
        return FitResult(params=params, metrics=metrics, data_used=names, history=tuple(history))

    def _starting_network(self, tp: CellposeTrainParams) -> tuple[Any, str]:
        torch_seed(tp.seed)
        start = tp.start_from.strip()
        device = self._device()
        if start == "scratch":
            return build_network(None, tp.diam_mean, device), "scratch"
        if start in ("auto", "current"):
            try:
                return self.network(), self._network_spec or self.params.model
            except WeightsNotFoundError:
                if start == "current":
                    raise
                logger.warning(
                    "No weights for %r: training Cellpose from scratch.", self.params.model
                )
                return build_network(None, tp.diam_mean, device), "scratch"
        weights = drain(ensure_weights_iter(start))
        return build_network(weights, device=device), start

    def _validation_scores(self, samples: Sequence[Sample]) -> dict[str, float]:
        preds = [drain(self.predict_iter(s.image)).labels for s in samples]
        scores = score_images([np.asarray(s.labels) for s in samples], preds)
        return {
            "val_ap50": scores.ap50,
            "val_mean_ap": scores.mean_ap,
            "val_count_error": scores.count_error,
        }

    # ------------------------------------------------------------------ checkpoints
    def save(self, path: str | Path) -> Path:
        """Write the network atomically as a Cellpose 3 model file (loadable by Cellpose itself).

        The prediction parameters travel inside it as one extra JSON entry.
        """
        import torch

        path = Path(path)
        state = dict(self.network().net.state_dict())
        state[PARAMS_KEY] = json.dumps(params_to_dict(replace(self.params, model="")))
        with atomic_open(path, "wb") as handle:
            torch.save(state, handle)
        self._network_spec = str(path)
        self.params = replace(self.params, model=str(path))
        return path

    @classmethod
    def load(cls, path: str | Path) -> CellposeModel:
        """Load a checkpoint written by :meth:`save`, or any Cellpose 3 model file, on the CPU."""
        weights = resolve_weights(str(path))
        params = replace(_stored_params(weights.path), model=str(weights.path))
        model = cls(params)
        model.network()
        return model

    @classmethod
    def from_checkpoint(
        cls, path: str | Path, params: CellposeParams | None = None
    ) -> CellposeModel:
        """Load ``path``; ``params`` (if given) replace the stored ones except the network choice."""
        model = cls.load(path)
        if params is not None:
            model.params = replace(params, model=model.params.model)
        return model


def _stored_params(path: Path) -> CellposeParams:
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unreadable file gets the same advice
        raise ValueError(f"{path} is not a readable Cellpose model file ({err}).") from err
    stored = state.get(PARAMS_KEY) if isinstance(state, dict) else None
    if not stored:
        return CellposeParams()
    values = json.loads(stored)
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    return params_from_mapping(CellposeParams, values)


def torch_seed(seed: int) -> None:
    """Seed PyTorch's generator (initial weights)."""
    import torch

    torch.manual_seed(seed)
