"""The Python API: `segvit.load(source)` gives a model that segments photos.

One inference path: `SegvitModel.predict` calls segvit.engine.predict.segment, the function
`segvit predict` calls, with the same dataset test settings, so the labels it returns are the
ones that command writes. docs/python-api.md shows each call.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np

from segvit.data.info import DatasetSpec
from segvit.errors import SegvitError

Output = Literal["labels", "scores"]
SOURCES = (
    "a weights file, a run folder, release:NAME, an exported model folder, hf:OWNER/NAME "
    "or a .onnx file"
)


class SegvitModel:
    """A trained model and the dataset facts it predicts with (classes, palette, test
    settings). Build one with `segvit.load`."""

    def __init__(self, network: Any, dataset: DatasetSpec, record: dict[str, Any], source: str):
        self.network = network  # a Segmentor (PyTorch) or an OnnxSegmentor (onnxruntime)
        self.dataset = dataset
        self.record = record  # the weights file's metadata
        self.source = source

    def __repr__(self) -> str:
        meta = self.network.meta
        return (
            f"SegvitModel({meta.variant}, {meta.num_classes} classes of {self.dataset.name}, "
            f"crop {meta.crop}, {self.backend}, from {self.source})"
        )

    @property
    def backend(self) -> str:
        """ "torch" or "onnx": what runs the crop forward."""
        from segvit.export.onnx import OnnxSegmentor

        return "onnx" if isinstance(self.network, OnnxSegmentor) else "torch"

    @property
    def classes(self) -> tuple[str, ...]:
        """The class names, by class id."""
        return self.dataset.classes

    @property
    def palette(self) -> np.ndarray:
        """(K, 3) uint8 RGB colour of each class id."""
        return np.asarray(self.dataset.colours, np.uint8)

    def predict(
        self,
        image: Any,
        *,
        ms: bool = False,
        output: Output = "labels",
        precision: str = "auto",
    ) -> np.ndarray:
        """Segment one photo: a path, a PIL image or an (H, W, 3) uint8 RGB array.

        Arguments:
            ms: the paper's multi-scale test (ratios 0.5-1.75, with flips), else one scale.
            output: "labels": (H, W) class ids (uint8, uint16 past 256 classes);
                "scores": (K, H, W) float32 class probabilities, averaged over the passes.
            precision: "fp32", "bf16" (autocast) or "auto" (bf16 only where the hardware
                has bfloat16 units); the ONNX backend runs fp32.
        """
        from segvit.engine.predict import segment

        if output not in ("labels", "scores"):
            raise SegvitError(f"output {output!r}: expected 'labels' or 'scores'")
        rgb = as_rgb(image)
        return segment(
            self.network,
            rgb,
            self.dataset,
            multi_scale=ms,
            precision=precision,
            scores=output == "scores",
        )

    def overlay(self, image: Any, labels: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8: the photo blended with its labels' colours (as `segvit predict`
        draws its overlay, without the legend)."""
        from segvit.engine.predict import blend

        rgb = as_rgb(image)
        labels = np.asarray(labels)
        if labels.shape != rgb.shape[:2] or labels.dtype.kind not in "iu":
            raise SegvitError(
                f"overlay: expected integer labels of the image's size {rgb.shape[:2]}, "
                f"got {labels.dtype} {labels.shape}"
            )
        if labels.size and (labels.min() < 0 or labels.max() >= len(self.classes)):
            raise SegvitError(f"overlay: labels outside 0..{len(self.classes) - 1}")
        return blend(rgb, labels, self.palette)


def as_rgb(image: Any) -> np.ndarray:
    """(H, W, 3) uint8 RGB from a path, a PIL image or such an array; one line otherwise."""
    from PIL import Image

    if isinstance(image, str | Path):
        from segvit.data.imageio import read_rgb

        return read_rgb(Path(image))
    if isinstance(image, Image.Image):
        from segvit.data.imageio import _to_rgb

        return np.array(_to_rgb(image, "the PIL image"))
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise SegvitError(
                f"image: expected an (H, W, 3) uint8 RGB array, got {image.dtype} {image.shape}"
            )
        if min(image.shape[:2]) < 1:
            raise SegvitError(f"image: expected a non-empty image, got shape {image.shape}")
        return np.ascontiguousarray(image)
    raise SegvitError(
        f"image: expected a path, a PIL image or an (H, W, 3) uint8 array, "
        f"got {type(image).__name__}"
    )


def load(source: str | Path, *, dataset: str | None = None, device: str = "auto") -> SegvitModel:
    """A trained model from `source`:

    - a weights file (`segvit train`'s best.pt / last.pt, a .safetensors export, a release
      .pth), or `release:NAME` (a downloaded release checkpoint);
    - a run folder (its best.pt, else last.pt);
    - a model folder from `segvit export --format folder`, or `hf:OWNER/NAME` for one on the
      Hugging Face hub (fetched into its cache; HF_HUB_OFFLINE uses the cache only);
    - a .onnx file from `segvit export --format onnx` (run by onnxruntime, on the CPU).

    `dataset` (a name or a dataset file) names the classes and test settings; default the
    ones the model records. `device`: auto, cpu or cuda (PyTorch models).
    """
    from segvit.engine.distributed import resolve_device
    from segvit.export import folder as folders

    text = str(source)
    exported = False
    if text.startswith(folders.HF_PREFIX):
        path = folders.fetch_hub_folder(text)
        folders.read_config(path)
        weights: str | Path = path / folders.WEIGHTS
        exported = True
    elif text.startswith("release:"):
        weights = text
    else:
        path = Path(source)
        if not path.exists():
            raise SegvitError(f"{path}: no such file or folder; expected {SOURCES}")
        if path.suffix == ".onnx":
            return _load_onnx(path, dataset)
        if path.is_dir():
            weights, exported = _in_folder(path)
        else:
            weights = path
    from segvit.engine.loading import load_checkpoint

    network, record = load_checkpoint(weights, device=resolve_device(device))
    spec = _dataset(record, dataset, text, exported=exported)
    return SegvitModel(network, spec, record, text)


def _in_folder(path: Path) -> tuple[Path, bool]:
    """The weights a folder holds: an exported model's, else a run's best.pt or last.pt."""
    from segvit.export import folder as folders

    if folders.is_model_folder(path):
        folders.read_config(path)
        return path / folders.WEIGHTS, True
    for name in ("best.pt", "last.pt"):
        if (path / name).is_file():
            return path / name, False
    raise SegvitError(
        f"{path}: a folder with neither {folders.WEIGHTS} (an exported model) nor best.pt / "
        "last.pt (a run)"
    )


def _load_onnx(path: Path, dataset: str | None) -> SegvitModel:
    from segvit.export.onnx import OnnxSegmentor

    network = OnnxSegmentor(path)
    spec = _dataset(network.record, dataset, str(path), exported=True)
    return SegvitModel(network, spec, network.record, str(path))


def _dataset(
    record: dict[str, Any], dataset: str | None, source: str, *, exported: bool
) -> DatasetSpec:
    """The dataset to name classes and test by (segvit.experiments.spec's rule); an exported
    model carries its class names, and a `dataset` of other names is refused."""
    from segvit.experiments.spec import checkpoint_dataset

    spec = checkpoint_dataset(record, dataset)
    if exported and dataset is not None and record.get("dataset_spec"):
        own = DatasetSpec.from_record(str(record["dataset_spec"]))
        if own.classes != spec.classes:
            differ = next(
                i for i, (a, b) in enumerate(zip(own.classes, spec.classes, strict=True)) if a != b
            )
            raise SegvitError(
                f"{source}: exported with the classes of {own.name}, which differ from "
                f"--dataset {dataset}'s (class {differ}: {own.classes[differ]!r} vs "
                f"{spec.classes[differ]!r})"
            )
    return spec
