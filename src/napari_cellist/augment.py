"""Intensity augmentation of normalised training patches: brightness, contrast, gamma, noise.

Geometric augmentation (flips, rotations, zoom) is each model's own (it must move the targets
too); what is here changes only intensities, so it applies to any patch whose intensities are
normalised to about 0..1 (1st..99th percentile), whatever its axes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Jitter:
    """One draw of the intensity augmentation: ``gain * clip(x, 0) ** gamma + offset + noise``."""

    gain: float
    gamma: float
    offset: float
    sigma: float

    @classmethod
    def draw(cls, strength: float, rng: np.random.Generator) -> Jitter:
        """``gain`` and ``gamma`` log-uniform within ``1 +- strength``, ``offset`` within
        ``+- strength / 5``, noise standard deviation up to ``strength / 10``."""
        if not 0.0 <= strength <= 1.0:
            raise ValueError(f"The augmentation strength must be within 0..1, not {strength}.")
        span = np.log1p(strength)
        gain, gamma = np.exp(rng.uniform(-span, span, 2))
        offset = rng.uniform(-strength / 5, strength / 5)
        return cls(float(gain), float(gamma), float(offset), float(rng.uniform(0, strength / 10)))

    def apply(self, patch: np.ndarray, rng: np.random.Generator, noise: bool = True) -> np.ndarray:
        """The re-lit float32 patch (values <= 0 keep their value before gain and offset)."""
        x = np.asarray(patch, np.float32)
        out = x.copy()
        positive = x > 0
        out[positive] = x[positive] ** self.gamma
        out = self.gain * out + self.offset
        if noise and self.sigma > 0:
            out += rng.normal(0.0, self.sigma, x.shape).astype(np.float32)
        return out.astype(np.float32, copy=False)


def intensity_jitter(patch: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    """A randomly re-lit copy of a normalised patch.

    ``y = gain * x ** gamma + offset + noise`` (see :class:`Jitter`), with ``gain`` and ``gamma`` drawn
    log-uniformly within ``1 +- strength``, ``offset`` within ``+- strength / 5`` and Gaussian
    noise of standard deviation up to ``strength / 10`` (in units of the normalised range).
    Values below 0 (under the 1st percentile) skip the gamma.

    Parameters
    ----------
    patch : np.ndarray
        float32 patch of any shape (e.g. ``(C, Y, X)``), normalised to about 0..1.
    strength : float
        0 returns the patch unchanged; 0.3 is a moderate augmentation; at most 1.
    rng : np.random.Generator
        Source of the random draws (seeded by the caller for repeatable runs).

    Returns
    -------
    np.ndarray
        float32 array of the patch's shape.
    """
    if strength == 0:
        return np.asarray(patch, np.float32)
    return Jitter.draw(strength, rng).apply(patch, rng)
