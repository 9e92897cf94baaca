"""A model as one ONNX graph of its crop forward, and that graph run by onnxruntime.

The graph is `Segmentor.predict` on one crop: normalised images (B, 3, crop, crop) in,
pre-softmax class scores (B, K, crop, crop) out, the batch dynamic and the crop fixed. It
is traced at the crop, so the position embeddings are the crop's own (no resize of any
kind runs) and every Python branch is decided at export; the sliding window, the scales,
flips, softmax averaging and argmax stay in segvit.inference, shared with PyTorch. What a
deployer needs besides the graph goes into the model's metadata_props (see `metadata`).
"""

from __future__ import annotations

import io
import json
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from segvit.data.info import DatasetSpec
from segvit.errors import SegvitError
from segvit.fileio import atomic_write
from segvit.inference import MS_SCALES, InferenceSettings
from segvit.modeling.segmentor import ModelMeta, Segmentor
from segvit.modeling.specs import Normalization

# References: ONNX IR spec (ModelProto.metadata_props); torch.onnx (TorchScript exporter,
# dynamic_axes); onnxruntime InferenceSession.

MISSING = "the ONNX backend needs onnxruntime: pip install 'segvit[onnx]'"
OPSET = 17  # LayerNormalization is an operator from 17 on
INPUT, OUTPUT = "images", "scores"
PARITY_BOUND = 1e-4  # an export's largest score difference from PyTorch, relative to the
# largest score (at least 1); tiny random models measure about 1e-7
META_KEY = "segvit"  # the weights file's metadata, as JSON: what `segvit.load` reads back


class _Scores(torch.nn.Module):
    """The traced function: a Segmentor's per-class scores at its input size."""

    def __init__(self, model: Segmentor) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model.predict(images)  # (B, K, crop, crop)


def metadata(model: Segmentor, meta: Mapping[str, Any], dataset: DatasetSpec) -> dict[str, str]:
    """The ONNX model's metadata_props: the weights file's own metadata (`segvit`, JSON, what
    loading reads) and, for other runtimes, the classes, palette, normalisation (0..255 RGB),
    crop and the release's test settings, each a JSON value."""
    settings = InferenceSettings.for_dataset(dataset, model.meta.crop)
    norm = model.norm
    return {
        META_KEY: json.dumps(dict(meta) | model.meta.to_dict() | _dataset_record(dataset)),
        "classes": json.dumps(list(dataset.classes)),
        "palette": json.dumps(np.asarray(dataset.colours).tolist()),
        "normalization": json.dumps({"mean": list(norm.mean), "std": list(norm.std)}),
        "crop": json.dumps(model.meta.crop),
        "inference": json.dumps(inference_record(settings)),
    }


def _dataset_record(dataset: DatasetSpec) -> dict[str, str]:
    return {"dataset_spec": dataset.to_record(), "trained_on": dataset.name}


def inference_record(settings: InferenceSettings) -> dict[str, Any]:
    """The test settings a runtime needs to reproduce segvit's pipeline, as plain values."""
    return {
        "stride": settings.stride,
        "base_scale": list(settings.base_scale),
        "min_size": settings.min_size,
        "ms_scales": list(MS_SCALES),
        "ms_flip": True,
        "resize": "cv2 INTER_LINEAR, mmcv imrescale rule",
    }


def export_onnx(model: Segmentor, meta: Mapping[str, Any], dataset: DatasetSpec, out: Path) -> Path:
    """Write `model`'s crop forward to `out` (.onnx), with its metadata; the file appears
    only once it is complete and checked by onnx.checker."""
    onnx = _require("onnx")
    crop = model.meta.crop
    model = model.eval()
    wrapper = _Scores(model).eval()  # export restores the wrapper's mode: keep it eval too
    example = torch.zeros(2, 3, crop, crop)  # not 1: a traced batch of 1 may broadcast
    buffer = io.BytesIO()
    with warnings.catch_warnings():  # the TorchScript exporter's deprecation notice
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapper,
            (example,),
            buffer,
            input_names=[INPUT],
            output_names=[OUTPUT],
            dynamic_axes={INPUT: {0: "batch"}, OUTPUT: {0: "batch"}},
            opset_version=OPSET,
            dynamo=False,
        )
    proto = onnx.load_from_string(buffer.getvalue())
    for key, value in metadata(model, meta, dataset).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.producer_name = "segvit"
    onnx.checker.check_model(proto)
    data = proto.SerializeToString()
    _check_parity(data, wrapper, crop, Path(out))
    atomic_write(Path(out), lambda f: f.write(data))
    return Path(out)


def _check_parity(data: bytes, wrapper: torch.nn.Module, crop: int, out: Path) -> None:
    """onnxruntime loads the graph and its scores on a random batch (of another size than
    the traced one: the batch is dynamic) are PyTorch's, or nothing is written: an export that
    does not run, or runs to other numbers, never looks complete."""
    try:
        session = _session(data)
    except _Unrunnable as err:
        raise SegvitError(f"{out}: onnxruntime cannot run the exported graph ({err}); "
                          "nothing was written") from None  # fmt: skip
    images = torch.randn(3, 3, crop, crop, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = wrapper(images)
    (got,) = session.run([OUTPUT], {INPUT: images.numpy()})
    error = (torch.from_numpy(got) - expected).abs().max().item()
    bound = PARITY_BOUND * max(1.0, expected.abs().max().item())
    if not error <= bound:  # also catches NaN
        raise SegvitError(f"{out}: onnxruntime's scores differ from PyTorch's by {error:.3g} "
                          f"(more than {bound:.3g}); nothing was written")  # fmt: skip


class _Unrunnable(Exception):
    """onnxruntime refused a model; the message is its reason, on one line."""


def _session(model: str | bytes, *, threads: int | None = None) -> Any:
    """An onnxruntime CPU session of `model` (a path or the serialised graph), quiet but for
    errors; _Unrunnable when onnxruntime refuses it."""
    ort = _require("onnxruntime")
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: the rest is onnxruntime's chatter
    if threads is not None:
        options.intra_op_num_threads = threads
    try:
        return ort.InferenceSession(model, sess_options=options,
                                    providers=["CPUExecutionProvider"])  # fmt: skip
    except Exception as err:  # onnxruntime raises its own types for a graph it refuses
        raise _Unrunnable(" ".join(str(err).split())[:200]) from None


def _require(module: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise SegvitError(MISSING.replace("onnxruntime", module)) from None


class OnnxSegmentor:
    """An exported model run by onnxruntime on the CPU, shaped like a Segmentor where the
    test pipeline reads one: `predict`, `meta`, `norm`, `device`, `eval`/`train`."""

    device = torch.device("cpu")
    training = False

    def __init__(self, path: Path, *, threads: int | None = None) -> None:
        _require("onnxruntime")
        self.path = Path(path)
        if not self.path.is_file():
            raise SegvitError(f"{path}: no such ONNX file")
        try:
            self.session = _session(str(self.path), threads=threads)
        except _Unrunnable as err:
            raise SegvitError(f"{path}: not a readable ONNX model ({err})") from None
        props = self.session.get_modelmeta().custom_metadata_map
        if META_KEY not in props:
            raise SegvitError(
                f"{path}: an ONNX model, but not one segvit exported (no '{META_KEY}' metadata); "
                "export one with `segvit export CKPT --format onnx`"
            )
        self.record: dict[str, Any] = json.loads(props[META_KEY])
        self.meta = model_meta(self.record, path)
        norm = json.loads(props["normalization"])
        self.norm = Normalization(tuple(norm["mean"]), tuple(norm["std"]))
        self._check_signature()

    def _check_signature(self) -> None:
        (given,), (taken,) = self.session.get_inputs(), self.session.get_outputs()
        crop = self.meta.crop
        if (given.name, taken.name) != (INPUT, OUTPUT) or list(given.shape[1:]) != [3, crop, crop]:
            raise SegvitError(
                f"{self.path}: expected input {INPUT} (batch, 3, {crop}, {crop}) and output "
                f"{OUTPUT}; the graph has {given.name} {given.shape} -> {taken.name}"
            )

    def predict(self, images: torch.Tensor) -> torch.Tensor:
        """Scores (B, K, crop, crop) of normalised crops (B, 3, crop, crop)."""
        array = images.detach().to("cpu", torch.float32).contiguous().numpy()
        (scores,) = self.session.run([OUTPUT], {INPUT: array})
        return torch.from_numpy(scores)

    def eval(self) -> OnnxSegmentor:
        return self

    def train(self, mode: bool = True) -> OnnxSegmentor:
        return self


def model_meta(record: Mapping[str, Any], source: Path | str) -> ModelMeta:
    """The ModelMeta a weights file's metadata holds, read by the dataclass's own fields."""
    try:
        return ModelMeta.from_dict(record, source)
    except (TypeError, ValueError) as err:
        raise SegvitError(f"{source}: its segvit metadata is incomplete ({err})") from None
