"""Parameters of AIR prediction and training (their metadata builds the GUI and the CLI help)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ...devices import DEVICE_CHOICES


@dataclass(frozen=True)
class AirParams:
    """How a trained AIR model predicts (and where it runs: ``device`` also sets where it
    trains)."""

    device: str = field(
        default="auto",
        metadata={
            "help": "Where the network runs (prediction and training): 'auto' = an NVIDIA GPU "
            "(cuda), else an Apple GPU (mps), else the CPU.",
            "choices": DEVICE_CHOICES,
        },
    )
    diameter: float = field(
        default=0.0,
        metadata={
            "help": "Typical object diameter in pixels. 0 = automatic: the annotated diameter the "
            "model was trained at, else estimated from each image.",
            "min": 0.0,
        },
    )
    min_score: float = field(
        default=0.3,
        metadata={
            "help": "Smallest presence probability of a reported object (its mean over the "
            "test-time grid shifts).",
            "min": 0.0,
            "max": 1.0,
        },
    )
    alpha_threshold: float = field(
        default=0.5,
        metadata={
            "help": "A pixel belongs to an object where its decoded alpha exceeds this.",
            "min": 0.0,
            "max": 1.0,
            "advanced": True,
        },
    )
    min_keep: float = field(
        default=0.5,
        metadata={
            "help": "Drop objects keeping less than this fraction of their mask after "
            "overlaps are resolved (duplicates).",
            "min": 0.0,
            "max": 1.0,
            "advanced": True,
        },
    )
    border_mirror: float = field(
        default=0.5,
        metadata={
            "help": "Objects cut by the image border: mirror the image outwards by this many "
            "object diameters first (then crop back), so half-visible nuclei look whole. "
            "0 = off.",
            "min": 0.0,
            "max": 2.0,
            "advanced": True,
        },
    )
    flatten_background: bool = field(
        default=True,
        metadata={
            "help": "Uneven background or bright artefacts (e.g. NIH3T3): subtract a background "
            "estimated over several object diameters (robust to bright spots) and clip "
            "saturated artefacts before training and prediction. Stored with the model "
            "(checkpoints written before this option existed keep it off).",
        },
    )
    refine_masks: bool = field(
        default=True,
        metadata={
            "help": "Redraw each object's outline from the image at full resolution: near "
            "the decoded mask, the pixels brighter than an Otsu threshold between the "
            "object and its surroundings. Off = the decoded (smooth, coarse) masks.",
            "advanced": True,
        },
    )
    test_time_shifts: int = field(
        default=4,
        metadata={
            "help": "Predict this many times with the model's grid shifted by half a cell "
            "(1, 2 or 4), and keep the objects found on average: steadier results, "
            "proportionally slower.",
            "min": 1,
            "max": 4,
            "advanced": True,
        },
    )
    reconstruction: bool = field(
        default=True,
        metadata={
            "help": "Also return the model's reconstruction of the image (an Image layer).",
            "advanced": True,
        },
    )
    tile_size: int = field(
        default=1024,
        metadata={
            "help": "Encoder tile size in working pixels (memory vs. speed).",
            "min": 64,
            "advanced": True,
        },
    )


@dataclass(frozen=True)
class AirTrainParams:
    """How AIR is trained (unsupervised on every image, supervised where annotated)."""

    minutes: float = field(
        default=10.0,
        metadata={
            "help": "Training time budget in minutes (wall clock): training stops when it is "
            "spent or after 'steps', whichever comes first; annealing and the learning-rate "
            "decay follow the budget.",
            "min": 0.02,
        },
    )
    steps: int = field(
        default=20_000,
        metadata={
            "help": "Upper bound on the optimisation steps (the time budget usually stops "
            "training first).",
            "min": 1,
        },
    )
    batch_size: int = field(
        default=8, metadata={"help": "Crops per step.", "min": 1, "advanced": True}
    )
    crop_size: int = field(
        default=96,
        metadata={
            "help": "Crop side in working pixels (objects are ~12 px there); a multiple of 8.",
            "min": 16,
            "advanced": True,
        },
    )
    learning_rate: float = field(
        default=2e-3, metadata={"help": "Adam learning rate.", "advanced": True}
    )
    diameter: float = field(
        default=0.0,
        metadata={
            "help": "Object diameter in pixels for unannotated images; 0 = estimate per image "
            "(annotated images use their masks' median diameter).",
            "min": 0.0,
        },
    )
    prior_prob: float = field(
        default=0.05,
        metadata={
            "help": "Final prior probability that a slot holds an object (sparsity).",
            "min": 1e-4,
            "max": 0.5,
            "advanced": True,
        },
    )
    temperature: float = field(
        default=0.3,
        metadata={
            "help": "Final temperature of the relaxed presence variable.",
            "min": 0.05,
            "max": 1.0,
            "advanced": True,
        },
    )
    pseudo_labels: bool = field(
        default=False,
        metadata={
            "help": "Warm-start from the threshold model: its objects supervise unannotated "
            "images with a low weight."
        },
    )
    pseudo_label_weight: float = field(
        default=0.3,
        metadata={
            "help": "Weight of pseudo-labels relative to user annotations (1).",
            "min": 0.0,
            "max": 1.0,
            "advanced": True,
        },
    )
    border_mirror: float = field(
        default=0.5,
        metadata={
            "help": "Objects cut by the image border: train on images and annotations "
            "mirrored outwards by this many object diameters, as prediction sees them. "
            "0 = off.",
            "min": 0.0,
            "max": 2.0,
            "advanced": True,
        },
    )
    scale_jitter: float = field(
        default=0.25,
        metadata={
            "help": "Augmentation: also train on every image shrunk and enlarged by this "
            "fraction (objects of 1/(1+j) and 1+j times their size), so the model copes with "
            "nuclei larger or smaller than the typical diameter. 0 = off.",
            "min": 0.0,
            "max": 1.0,
            "advanced": True,
        },
    )
    grid_jitter: int = field(
        default=1,
        metadata={
            "help": "Augmentation: train on this many copies of every image, each shifted by "
            "a random fraction of a grid cell (the first unshifted), so that detection "
            "depends less on where an object falls within its cell. Helps predictions "
            "without test-time grid shifts; 1 = off.",
            "min": 1,
            "max": 8,
            "advanced": True,
        },
    )
    intensity_augment: float = field(
        default=0.0,
        metadata={
            "help": "Augmentation strength of brightness, contrast, gamma and noise of the "
            "training crops (0 = off; 0.3 = gain and gamma within +-30 %).",
            "min": 0.0,
            "max": 1.0,
            "advanced": True,
        },
    )
    threads: int = field(
        default=1, metadata={"help": "CPU threads used by training.", "min": 1, "advanced": True}
    )
    seed: int = field(default=0, metadata={"help": "Random seed.", "advanced": True})

    @property
    def time_limit_s(self) -> float:
        """The time budget in seconds (``minutes * 60``; the former parameter's name)."""
        return float(self.minutes) * 60.0
