"""The table of downloadable weights files: Cellpose 3.1, SAM and micro-sam (name -> URL, file
name, checksums, size), kept apart from the downloading itself (:mod:`napari_cellist.downloads`,
which re-exports these names).
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class WeightsFile:
    """One downloadable weights file.

    Parameters
    ----------
    name : str
        Registry key, ``"<library>/<model>"`` (``"cellpose/cyto3"``, ``"sam/vit_b"``).
    url : str
        Where the file is published.
    filename : str
        File name in the cache folder (the library's own name for it).
    library : str
        ``"cellpose"``, ``"sam"`` or ``"micro_sam"``: whose cache folder convention applies.
    hashes : tuple of str
        Known checksums as ``"<algorithm>:<hex>"`` (``sha256``, ``xxh128``...); the first whose
        algorithm is available here is checked. Empty when none is published.
    size : int or None
        Exact size in bytes when known (checked before the checksum).
    approx_mb : float or None
        Rough size in MB for messages (never checked).
    """

    name: str
    url: str
    filename: str
    library: str
    hashes: tuple[str, ...] = ()
    size: int | None = None
    approx_mb: float | None = None

    @property
    def known_hash(self) -> str | None:
        """The checksum that is verified: the first of :attr:`hashes` computable here."""
        for value in self.hashes:
            if value.split(":", 1)[0] != "xxh128" or _has_xxhash():
                return value
        return None


def _has_xxhash() -> bool:
    try:
        import xxhash  # noqa: F401
    except ImportError:
        return False
    return True


# Cellpose 3.1: cellpose.models.model_path / size_model_path / cache_model_path name the files
# and fetch them from _MODEL_URL/<file name> (tests compare this table with the package).
CELLPOSE_URL = "https://www.cellpose.org/models"
CELLPOSE_NAMES = (
    "cyto3", "nuclei", "cyto2", "cyto", "cyto2_cp3", "tissuenet_cp3", "livecell_cp3",
    "yeast_PhC_cp3", "yeast_BF_cp3", "bact_phase_cp3", "bact_fluor_cp3", "deepbacs_cp3",
    "neurips_cellpose_default", "neurips_grayscale_cyto2",
)  # fmt: skip
CELLPOSE_SIZE_MODELS = ("cyto3", "nuclei", "cyto2", "cyto")


def cellpose_filename(name: str) -> str:
    """File name Cellpose 3 stores the pretrained network ``name`` under."""
    return f"{name}torch_0" if name in ("cyto", "cyto2", "nuclei") else name


def cellpose_size_filename(name: str) -> str:
    """File name of the size model (automatic diameter) of a pretrained Cellpose network."""
    return "size_cyto3.npy" if name == "cyto3" else f"size_{name}torch_0.npy"


SAM_URL = "https://dl.fbaipublicfiles.com/segment_anything/{filename}"
# (file name, xxh128 (micro-sam today), sha256 (micro-sam's first registry), approx MB)
_SAM = {
    "vit_b": (
        "sam_vit_b_01ec64.pth",
        "xxh128:6923c33df3637b6a922d7682bfc9a86b",
        "sha256:ec2df62732614e57411cdcf32a23ffdf28910380d03139ee0f4fcbe91eb8c912",
        375.0,
    ),
    "vit_l": (
        "sam_vit_l_0b3195.pth",
        "xxh128:a82beb3c660661e3dd38d999cc860e9a",
        "sha256:3adcc4315b642a4d2101128f611684e8734c41232a17c648ed1693702a49a622",
        1250.0,
    ),
    "vit_h": (
        "sam_vit_h_4b8939.pth",
        "xxh128:97698fac30bd929c2e6d8d8cc15933c2",
        "sha256:a7bf3b02f3ebf1267aba913ff637d9a2d5c33d3173bb679e46d9f338c26f262e",
        2560.0,
    ),
}
_BIOIMAGE_IO = "https://uk1s3.embassy.ebi.ac.uk/public-datasets/bioimage.io"
# micro-sam's microscopy models (micro_sam/util.py: models()): name -> (url, xxh128)
_MICRO_SAM = {
    "vit_b_lm": (f"{_BIOIMAGE_IO}/diplomatic-bug/1.2/files/vit_b.pt", "fe9252a29f3f4ea53c15a06de471e186"),
    "vit_l_lm": (f"{_BIOIMAGE_IO}/idealistic-rat/1.2/files/vit_l.pt", "017f20677997d628426dec80a8018f9d"),
    "vit_b_em_organelles": (f"{_BIOIMAGE_IO}/noisy-ox/1.2/files/vit_b.pt", "f3bf2ed83d691456bae2c3f9a05fb438"),
    "vit_l_em_organelles": (f"{_BIOIMAGE_IO}/humorous-crab/1.2/files/vit_l.pt", "810b084b6e51acdbf760a993d8619f2d"),
    "vit_b_lm_decoder": (f"{_BIOIMAGE_IO}/diplomatic-bug/1.2/files/vit_b_decoder.pt", "708b15ac620e235f90bb38612c4929ba"),
    "vit_l_lm_decoder": (f"{_BIOIMAGE_IO}/idealistic-rat/1.2/files/vit_l_decoder.pt", "2faeafa03819dfe03e7c46a44aaac64a"),
    "vit_b_em_organelles_decoder": (f"{_BIOIMAGE_IO}/noisy-ox/1.2/files/vit_b_decoder.pt", "bb6398956a6b0132c26b631c14f95ce2"),
    "vit_l_em_organelles_decoder": (f"{_BIOIMAGE_IO}/humorous-crab/1.2/files/vit_l_decoder.pt", "334877640bfdaaabce533e3252a17294"),
}  # fmt: skip
MICRO_SAM_MODELS = tuple(name for name in _MICRO_SAM if not name.endswith("_decoder"))


def _build_registry() -> dict[str, WeightsFile]:
    files: list[WeightsFile] = []
    for name in CELLPOSE_NAMES:
        filename = cellpose_filename(name)
        files.append(
            WeightsFile(f"cellpose/{name}", f"{CELLPOSE_URL}/{filename}", filename, "cellpose")
        )
    for name in CELLPOSE_SIZE_MODELS:
        filename = cellpose_size_filename(name)
        files.append(
            WeightsFile(f"cellpose/{filename}", f"{CELLPOSE_URL}/{filename}", filename, "cellpose")
        )
    for name, (filename, xxh, sha, mb) in _SAM.items():
        url = SAM_URL.format(filename=filename)
        files.append(WeightsFile(f"sam/{name}", url, filename, "sam", (xxh, sha), None, mb))
    for name, (url, xxh) in _MICRO_SAM.items():
        files.append(WeightsFile(f"micro_sam/{name}", url, name, "micro_sam", (f"xxh128:{xxh}",)))
    return {item.name: item for item in files}


def with_url(item: WeightsFile, url: str, **changes: object) -> WeightsFile:
    """A copy of ``item`` fetched from ``url`` (tests and private mirrors of one file)."""
    return replace(item, url=url, **changes)  # type: ignore[arg-type]
