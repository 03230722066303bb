"""AIR checkpoints: one ``torch.save`` of a plain dict, written atomically, read onto a chosen
device (the CPU unless asked).

Contents: ``format`` and ``version`` (of this layout), ``config`` (network hyper-parameters),
``state_dict`` (weights), ``params`` (prediction parameters), ``diameter`` (annotated object
diameter the model was trained at, or None) and ``info`` (training summary). Only tensors and
plain Python values are stored, so the file loads with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch

from ...io.writers import atomic_path
from .generative import AirNet
from .modules import Geometry

FORMAT = "napari-cellist-air"
VERSION = (
    3  # 3: boxes turn (z_where has an angle); 2: objects add their contrast onto the background
)


@dataclass(frozen=True)
class NetConfig:
    """Architecture of an AIR network (fixed for the life of a checkpoint)."""

    working_diameter: float = 12.0
    cell: int = 8
    slots: int = 1
    glimpse: int = 16
    window: int = 24
    z_what: int = 8
    width: int = 32
    features: int = 32
    obs_sigma: float = 0.15  # likelihood sd, working intensity units (after `intensity`)
    min_contrast: float = 0.1  # objects are at least this much brighter than the background
    aspect_range: float = 1.2  # boxes' height / width within exp(+-1.2) = 1/3.3 .. 3.3
    angle_range: float = math.pi / 4  # boxes turn by up to 45 degrees either way (0 = upright)
    intensity: str = "sqrt"  # working intensity scale (modules.INTENSITY_SCALES)
    sqrt_offset: float = 0.1  # offset of the "sqrt" scale, normalised intensity units

    def geometry(self) -> Geometry:
        """The grid geometry."""
        return Geometry(
            self.working_diameter,
            self.cell,
            self.slots,
            self.glimpse,
            self.window,
            self.aspect_range,
            self.angle_range,
            self.intensity,
            self.sqrt_offset,
        )

    def build(self) -> AirNet:
        """A freshly initialised network."""
        return AirNet(
            self.geometry(),
            self.z_what,
            self.width,
            self.features,
            self.obs_sigma,
            self.min_contrast,
        )


def save_checkpoint(
    path: str | Path,
    net: AirNet,
    config: NetConfig,
    params: dict[str, Any],
    diameter: float | None,
    info: dict[str, Any],
) -> Path:
    """Write a checkpoint atomically (temporary file in the same folder, then ``os.replace``)."""
    path = Path(path)
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "config": asdict(config),
        "state_dict": {k: v.detach().cpu() for k, v in net.state_dict().items()},
        "params": dict(params),
        "diameter": diameter,
        "info": dict(info),
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def load_checkpoint(
    path: str | Path, device: torch.device | str | None = None
) -> tuple[AirNet, NetConfig, dict[str, Any]]:
    """Network (eval mode, on ``device``: tensors loaded with ``map_location`` there; None =
    the CPU), its config and the checkpoint dict.

    Raises
    ------
    ValueError
        When the file is not an AIR checkpoint, or was written by another checkpoint version.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"AIR checkpoint '{path}' does not exist; train one with 'cellist train --model air'."
        )
    try:
        payload = torch.load(path, map_location=device or "cpu", weights_only=True)
    except Exception as err:  # corrupt or foreign file: say which file and why
        raise ValueError(f"'{path}' is not a readable AIR checkpoint ({err}).") from err
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"'{path}' is not an AIR checkpoint (no '{FORMAT}' marker).")
    if payload.get("version", 0) > VERSION:
        raise ValueError(
            f"'{path}' was written by a newer napari-cellist (checkpoint version "
            f"{payload['version']} > {VERSION}); upgrade napari-cellist to read it."
        )
    if payload.get("version", 0) < VERSION:
        raise ValueError(
            f"'{path}' was written by an older napari-cellist whose AIR drew objects differently "
            f"(checkpoint version {payload.get('version')} < {VERSION}); train it again from the "
            "same images ('Target model' > Train, or 'cellist train --model air')."
        )
    known = {f.name for f in fields(NetConfig)}
    # Checkpoints from before the intensity scale existed were trained on linear intensities.
    stored = {"intensity": "linear", **payload["config"]}
    config = NetConfig(**{k: v for k, v in stored.items() if k in known})
    net = config.build().to(device or "cpu")
    net.load_state_dict(payload["state_dict"])
    net.eval()
    return net, config, payload
