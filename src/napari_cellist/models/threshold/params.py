"""Parameters of the threshold model and of its parameter search."""

from __future__ import annotations

from dataclasses import dataclass, field

METHODS = ("otsu", "li", "triangle", "manual")
SCALES = ("log", "sqrt", "linear")


@dataclass(frozen=True)
class ThresholdParams:
    """Parameters of the threshold model (defaults suit fluorescent nuclei)."""

    method: str = field(
        default="otsu",
        metadata={
            "help": "How the foreground level is chosen: Otsu, Li, triangle or a manual level.",
            "choices": METHODS,
        },
    )
    level: float | None = field(
        default=None,
        metadata={
            "help": "Manual threshold level in the image's intensity units (method 'manual').",
            "advanced": True,
        },
    )
    diameter: float | None = field(
        default=None,
        metadata={
            "help": "Typical object diameter in pixels; empty = estimate it from the image.",
            "min": 0.0,
        },
    )
    smoothing: float | None = field(
        default=None,
        metadata={
            "help": "Gaussian smoothing in pixels before thresholding; empty = diameter / 25.",
            "advanced": True,
        },
    )
    background_radius: float | None = field(
        default=None,
        metadata={
            "help": "Subtract a smooth background (uneven illumination) of this radius in pixels; 0 = off, empty = off.",
            "advanced": True,
        },
    )
    intensity_scale: str = field(
        default="log",
        metadata={
            "help": "Scale on which the level is chosen: 'log' (objects of very different brightness, default), 'sqrt' (photon noise) or 'linear'.",
            "choices": SCALES,
            "advanced": True,
        },
    )
    invert: bool = field(
        default=False, metadata={"help": "Objects are darker than the background."}
    )
    min_area: float | None = field(
        default=None,
        metadata={
            "help": "Smallest object kept, in pixels (voxels in 3D); empty = 10 % of a typical object.",
            "advanced": True,
        },
    )
    max_area: float | None = field(
        default=None,
        metadata={"help": "Largest object kept, in pixels; empty = no limit.", "advanced": True},
    )
    fill_holes: bool = field(default=True, metadata={"help": "Fill holes inside objects."})
    split_touching: bool = field(
        default=True,
        metadata={"help": "Split touching objects with a distance-transform watershed."},
    )
    local_refine: bool = field(
        default=True,
        metadata={
            "help": "Refine each object's outline with a level computed around it.",
            "advanced": True,
        },
    )
    intensity_weight: float = field(
        default=0.0,
        metadata={
            "help": "How much dim gaps between touching objects guide the split (0 = shape only).",
            "advanced": True,
        },
    )
    seed_spacing: float = field(
        default=0.35,
        metadata={
            "help": "Minimum distance between watershed seeds, as a fraction of the diameter.",
            "advanced": True,
        },
    )


@dataclass(frozen=True)
class ThresholdFitParams:
    """Search space of :meth:`ThresholdModel.fit_iter`."""

    methods: tuple[str, ...] = field(
        default=("otsu", "li", "triangle"),
        metadata={"help": "Threshold methods tried.", "choices": METHODS[:3]},
    )
    diameter_factors: tuple[float, ...] = field(
        default=(0.7, 0.85, 1.0, 1.2, 1.4),
        metadata={"help": "Diameters tried, relative to the annotated median."},
    )
    smoothing_factors: tuple[float, ...] = field(
        default=(0.02, 0.04, 0.08),
        metadata={"help": "Smoothing tried, as a fraction of the diameter."},
    )
    background: tuple[bool, ...] = field(
        default=(False, True), metadata={"help": "Try background subtraction."}
    )
    min_improvement: float = field(
        default=0.01,
        metadata={
            "help": "Keep the current parameters unless the cross-validated choice beats them by "
            "this much AP50 on held-out images (with one image: on that image).",
            "advanced": True,
        },
    )
    max_candidates: int = field(
        default=60,
        metadata={
            "help": "Evaluate at most this many parameter sets (the current ones first, the "
            "others in random order; the time budget may stop the search earlier)."
        },
    )
    minutes: float = field(
        default=1.0,
        metadata={
            "help": "Time budget of the search in minutes: no new candidate is started once it "
            "is spent.",
            "min": 0.01,
        },
    )
    cv_folds: int = field(
        default=5,
        metadata={
            "help": "The best candidate replaces the current parameters only if choosing it this "
            "way beats them on held-out images: cross-validation over this many folds of the "
            "annotated images (at most one per image).",
            "min": 2,
            "advanced": True,
        },
    )
    validation_fraction: float = field(
        default=0.0,
        metadata={"help": "Fraction of annotated images held out to score the fitted model."},
    )
    seed: int = field(default=0, metadata={"help": "Random seed of the search.", "advanced": True})
