"""Prediction and training parameters of the Cellpose model, with Cellpose's own defaults.

The ``help`` texts become the tooltips of the dock widget and the CLI's ``--param`` help, so they
say what each setting does in a biologist's words. Nothing here imports Cellpose.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ...devices import DEVICE_CHOICES

PRETRAINED_NAMES = ("cyto3", "nuclei", "cyto2", "cyto")


@dataclass(frozen=True)
class CellposeParams:
    """Parameters of one Cellpose prediction (``CellposeModel.eval``)."""

    model: str = field(
        default="cyto3",
        metadata={
            "help": "Which Cellpose network: 'cyto3' (cells and nuclei, the generalist), 'nuclei', "
            "'cyto2', 'cyto' (or a dataset model such as 'tissuenet_cp3'), or the path of a model "
            "file (a Cellpose 3 model or a checkpoint trained here). Pretrained files live in "
            "Cellpose's model folder and are downloaded there on first use (not with "
            "CELLIST_OFFLINE=1).",
            "suggestions": PRETRAINED_NAMES,
        },
    )
    device: str = field(
        default="auto",
        metadata={
            "help": "Where the network runs: 'auto' = an NVIDIA GPU (cuda), else an Apple GPU "
            "(mps), else the CPU.",
            "choices": DEVICE_CHOICES,
        },
    )
    diameter: float | None = field(
        default=None,
        metadata={
            "help": "Typical object diameter in pixels. Empty or 0 = estimate it for each image "
            "(Cellpose's size model when its file is present, else from the image). The image is "
            "rescaled so objects have the size the network was trained on.",
            "min": 0.0,
        },
    )
    channels: tuple[int, int] = field(
        default=(0, 0),
        metadata={
            "help": "For multi-channel images (set 'channel_axis'): first = channel showing the "
            "cells (1, 2, 3 = first, second, third channel; 0 = grey / average), second = optional "
            "nucleus channel (0 = none). Ignored for grey images.",
            "advanced": True,
        },
    )
    channel_axis: int | None = field(
        default=None,
        metadata={
            "help": "Axis of the image that holds colour channels; empty = grey image.",
            "advanced": True,
        },
    )
    invert: bool = field(
        default=False,
        metadata={
            "help": "Objects are darker than the background (e.g. dark nuclei in bright field): invert the image first."
        },
    )
    flow_threshold: float = field(
        default=0.4,
        metadata={
            "help": "Shape-consistency check: objects whose flows disagree more than this are "
            "dropped. Raise it (e.g. 0.6) if too few objects are found, lower it if shapes are ragged. "
            "Not used in 3D mode.",
            "min": 0.0,
            "max": 3.0,
        },
    )
    cellprob_threshold: float = field(
        default=0.0,
        metadata={
            "help": "How sure the network must be that a pixel is inside an object (-6..6). Lower it "
            "to find more / larger objects (dim cells), raise it for fewer / tighter ones.",
            "min": -6.0,
            "max": 6.0,
        },
    )
    min_size: int = field(
        default=15,
        metadata={
            "help": "Objects smaller than this many pixels (voxels in 3D) are removed; -1 keeps all.",
            "advanced": True,
        },
    )
    border_mirror: float = field(
        default=0.5,
        metadata={
            "help": "Objects cut by the image border: the image is mirrored outwards by this many "
            "object diameters before segmentation (then cropped back), so that half-visible "
            "nuclei at the edge look whole to the network and are not lost. 0 = off (plain "
            "Cellpose).",
            "min": 0.0,
            "max": 2.0,
            "advanced": True,
        },
    )
    normalize: bool = field(
        default=True,
        metadata={
            "help": "Stretch intensities so the 1st..99th percentiles map to 0..1 (recommended).",
            "advanced": True,
        },
    )
    norm_percentiles: tuple[float, float] = field(
        default=(1.0, 99.0),
        metadata={
            "help": "Low and high intensity percentiles used by the normalisation.",
            "advanced": True,
        },
    )
    tile_norm_blocksize: int = field(
        default=0,
        metadata={
            "help": "Normalise in blocks of this many pixels to brighten dim regions (uneven illumination); 0 = off.",
            "advanced": True,
        },
    )
    bsize: int = field(
        default=224,
        metadata={
            "help": "Tile size in pixels the network sees at once (keep 224, as in training).",
            "advanced": True,
        },
    )
    tile_overlap: float = field(
        default=0.1,
        metadata={"help": "Overlap between neighbouring tiles (fraction).", "advanced": True},
    )
    augment: bool = field(
        default=False,
        metadata={
            "help": "Average flipped tiles: slightly better, about 4x slower.",
            "advanced": True,
        },
    )
    resample: bool = field(
        default=True,
        metadata={
            "help": "Trace objects at the original resolution (smoother outlines); off is much faster for big objects.",
            "advanced": True,
        },
    )
    niter: int = field(
        default=0,
        metadata={
            "help": "Steps of flow tracking; 0 = automatic from the diameter. Raise for long, thin cells.",
            "advanced": True,
        },
    )
    max_size_fraction: float = field(
        default=0.4,
        metadata={
            "help": "Objects larger than this fraction of the image are removed.",
            "advanced": True,
        },
    )
    batch_size: int = field(
        default=8,
        metadata={"help": "Tiles processed together (memory vs speed).", "advanced": True},
    )
    do_3D: bool = field(
        default=False,
        metadata={
            "help": "Segment a (Z, Y, X) stack as a volume (flows in XY, XZ and YZ). Off: plane by plane, see 'stitch_threshold'."
        },
    )
    anisotropy: float = field(
        default=1.0,
        metadata={
            "help": "3D: Z step divided by the XY pixel size (e.g. 2.0 if planes are twice as far apart as pixels).",
            "min": 0.1,
        },
    )
    stitch_threshold: float = field(
        default=0.0,
        metadata={
            "help": "3D stacks without 3D mode: segment each plane, then join masks of neighbouring "
            "planes that overlap more than this IoU (e.g. 0.25) into one object. 0 = planes stay separate.",
            "min": 0.0,
            "max": 1.0,
        },
    )
    flow3D_smooth: float = field(
        default=0.0,
        metadata={
            "help": "3D: smooth the flows with a Gaussian of this many voxels (helps noisy stacks); 0 = off.",
            "advanced": True,
        },
    )


@dataclass(frozen=True)
class CellposeTrainParams:
    """Parameters of training / fine-tuning (``fit_iter``)."""

    start_from: str = field(
        default="auto",
        metadata={
            "help": "'auto' = fine-tune the current network if its weights are available, else "
            "train from scratch; 'current' = fine-tune the current network (error without "
            "weights); 'scratch' = random weights; or a pretrained name / model file.",
            "suggestions": ("auto", "current", "scratch", *PRETRAINED_NAMES),
        },
    )
    minutes: float = field(
        default=10.0,
        metadata={
            "help": "Training time budget in minutes (wall clock): training stops when it is "
            "spent (or after 'n_epochs'), keeping the state that scored best on the validation "
            "images. 10 min on a CPU gives a usable nucleus model; more helps.",
            "min": 0.05,
        },
    )
    n_epochs: int = field(
        default=10_000,
        metadata={
            "help": "Upper bound on the passes over the training images (the time budget "
            "usually stops training first).",
            "min": 1,
        },
    )
    learning_rate: float = field(
        default=0.005,
        metadata={"help": "AdamW step size (Cellpose 3's default).", "advanced": True},
    )
    weight_decay: float = field(
        default=1e-5, metadata={"help": "AdamW weight decay.", "advanced": True}
    )
    batch_size: int = field(
        default=8, metadata={"help": "Patches per optimisation step.", "advanced": True}
    )
    bsize: int = field(
        default=64,
        metadata={
            "help": "Training patch size in pixels (smaller = faster steps on a CPU; 64 px at "
            "the network's object size holds a few nuclei).",
            "advanced": True,
        },
    )
    images_per_epoch: int = field(
        default=8,
        metadata={
            "help": "Patches drawn per epoch; 0 = the number of training planes, at least one batch.",
            "advanced": True,
        },
    )
    scale_range: float = field(
        default=0.5,
        metadata={
            "help": "Random zoom augmentation: patches are scaled by 1 +- scale_range / 2.",
            "advanced": True,
        },
    )
    intensity_augment: float = field(
        default=0.0,
        metadata={
            "help": "Augmentation strength of brightness, contrast, gamma and noise (0 = off; "
            "0.3 = gain and gamma within +-30 %, noise up to 3 % of the range).",
            "min": 0.0,
            "max": 1.0,
            "advanced": True,
        },
    )
    min_train_masks: int = field(
        default=1,
        metadata={
            "help": "Images (planes) with fewer annotated objects are not trained on (random "
            "patches of the others are all kept, also those with only unlabelled debris: it is "
            "learnt as background).",
            "advanced": True,
        },
    )
    validation_fraction: float = field(
        default=0.2,
        metadata={
            "help": "Fraction of annotated images held out (not trained on): their loss, measured "
            "periodically, picks the state kept, and their AP50 is measured at the end.",
            "min": 0.0,
            "max": 0.9,
        },
    )
    diam_mean: float = field(
        default=17.0,
        metadata={
            "help": "Object diameter the network works at when training from scratch (Cellpose: 30; 17 for nuclei, faster).",
            "advanced": True,
        },
    )
    num_threads: int = field(
        default=0,
        metadata={
            "help": "CPU threads for PyTorch; 0 = leave PyTorch's setting.",
            "advanced": True,
        },
    )
    seed: int = field(
        default=0,
        metadata={"help": "Random seed (split, patches, initial weights).", "advanced": True},
    )
