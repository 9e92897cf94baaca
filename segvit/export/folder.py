"""A model folder the Hugging Face hub can hold: weights, a description, a model card.

    mymodel/
      model.safetensors   the weights; its header holds the weights file's metadata (JSON),
                          so it loads like any checkpoint (segvit.engine.loading)
      config.json         variant, backbone, classes, palette, normalisation, crop, test
                          settings, segvit version: for people and other tools
      README.md           the model card: dataset, metrics, recipe, licences

safetensors holds tensors only (no pickle, nothing runs when it is read), which is what a
file downloaded from a hub should be. `hf upload OWNER/NAME mymodel/` publishes the folder;
`segvit.load("hf:OWNER/NAME")` fetches it back through the Hugging Face cache.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np

from segvit.data.info import DatasetSpec
from segvit.engine.checkpoint import export_safetensors
from segvit.errors import SegvitError
from segvit.export.onnx import inference_record
from segvit.fileio import write_json, write_text
from segvit.inference import InferenceSettings
from segvit.modeling.release import HF_PREFIX
from segvit.modeling.segmentor import Segmentor

# References: Hugging Face hub model cards (README.md with YAML front matter) and
# huggingface_hub.snapshot_download (the cache, HF_HUB_OFFLINE); safetensors format.

WEIGHTS, CONFIG, CARD = "model.safetensors", "config.json", "README.md"

# The licence of each backbone family's pretrained weights, by the spec's class name.
BACKBONE_LICENCES = {
    "ViTSpec": ("apache-2.0", "AugReg ViT weights (google-research/vision_transformer)"),
    "SwinSpec": ("mit", "Swin Transformer weights (microsoft/Swin-Transformer)"),
}


def segvit_version() -> str:
    try:
        return version("segvit")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def is_model_folder(path: Path) -> bool:
    return path.is_dir() and (path / WEIGHTS).is_file()


def export_folder(
    model: Segmentor,
    meta: Mapping[str, Any],
    dataset: DatasetSpec,
    out: Path,
    *,
    evaluations: Mapping[str, Mapping[str, Any]] | None = None,
) -> Path:
    """Write the model folder `out` (created; files in it replaced). `evaluations`: scores
    files by name (`segvit eval`'s JSON) for the model card."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise SegvitError(f"--out {out}: a file is there; expected a folder")
    out.mkdir(parents=True, exist_ok=True)
    record = dict(meta) | model.meta.to_dict()
    record |= {"dataset_spec": dataset.to_record(), "trained_on": dataset.name}
    config = describe(model, dataset, record)
    # The weights go last: a folder without them is no model folder (is_model_folder).
    (out / WEIGHTS).unlink(missing_ok=True)
    write_json(out / CONFIG, config)
    write_text(out / CARD, model_card(config, record, evaluations or {}))
    export_safetensors(out / WEIGHTS, model.state_dict(), record)
    return out


def describe(model: Segmentor, dataset: DatasetSpec, record: Mapping[str, Any]) -> dict:
    """config.json: what the model is and how it is run, as plain JSON values."""
    spec = model.backbone.spec
    norm = model.norm
    settings = InferenceSettings.for_dataset(dataset, model.meta.crop)
    return {
        "format": "segvit",
        "segvit_version": segvit_version(),
        "model": model.meta.to_dict(),
        "backbone": {
            "name": spec.label,
            "kind": type(spec).__name__,
            "timm": spec.timm_name,
            "weights": spec.hub_name,
        },
        "dataset": dataset.name,
        "classes": list(dataset.classes),
        "palette": np.asarray(dataset.colours).tolist(),
        "normalization": {"mean": list(norm.mean), "std": list(norm.std), "units": "0..255 RGB"},
        "crop": model.meta.crop,
        "inference": inference_record(settings),
        "recipe": record.get("recipe"),
        "iteration": record.get("iteration"),
    }


def model_card(
    config: Mapping[str, Any], record: Mapping[str, Any], evaluations: Mapping[str, Mapping]
) -> str:
    """README.md: hub front matter, then what the model is, how it scores, how to use it."""
    spec_name = config["backbone"]["name"]
    licence, weights = _licence(config)
    variant = config["model"]["variant"]
    lines = [
        "---",
        f"license: {licence}",
        "library_name: segvit",
        "pipeline_tag: image-segmentation",
        f"tags: [semantic-segmentation, segvit, {variant}]",
        "---",
        "",
        f"# {variant} on {config['dataset']}",
        "",
        f"A SegViT model (`{variant}`, backbone {spec_name}) for semantic segmentation of "
        f"{len(config['classes'])} classes ({config['dataset']}), exported by segvit "
        f"{config['segvit_version']}. Crop {config['crop']}, sliding-window stride "
        f"{config['inference']['stride']}.",
        "",
        "## Training",
        "",
        f"- recipe: {record.get('recipe', 'not recorded')}",
        f"- iterations: {record.get('iteration', 'not recorded')}",
        f"- loss: {record.get('loss', 'not recorded')}",
        f"- backbone initialisation: {config['backbone']['weights']}",
        "",
        "## Evaluation",
        "",
    ]
    rows = [
        f"| {name} | {_cell(result.get('mIoU'))} | {_cell(result.get('aAcc'))} | "
        f"{_cell(result.get('mAcc'))} | {result.get('images', '')} |"
        for name, result in sorted(evaluations.items())
    ]
    if rows:
        lines += ["| evaluation | mIoU | aAcc | mAcc | images |", "|---|---|---|---|---|", *rows]
    elif record.get("mIoU") is not None:
        lines.append(f"mIoU {_cell(record['mIoU'])} at the checkpoint's own evaluation.")
    else:
        lines.append("No evaluation was recorded with this checkpoint.")
    lines += [
        "",
        "## Use",
        "",
        "```python",
        "import segvit",
        "",
        'model = segvit.load("hf:OWNER/NAME")  # or a local copy of this folder',
        'labels = model.predict("photo.jpg")',
        "```",
        "",
        "## Licence",
        "",
        f"The backbone was initialised from the {weights}; their licence is {licence}.",
        "",
    ]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    return "" if value is None else f"{float(value):.2f}"


def _licence(config: Mapping[str, Any]) -> tuple[str, str]:
    found = BACKBONE_LICENCES.get(config["backbone"].get("kind", ""))
    if found is None:
        return "other", f"pretrained weights {config['backbone']['weights']} (see their card)"
    return found


def read_config(folder: Path) -> dict[str, Any]:
    """A model folder's config.json, checked to be segvit's."""
    path = Path(folder) / CONFIG
    try:
        config = json.loads(path.read_text())
    except FileNotFoundError:
        raise SegvitError(f"{folder}: a model folder needs {CONFIG}; none is there") from None
    except ValueError as err:
        raise SegvitError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(config, dict) or config.get("format") != "segvit":
        raise SegvitError(f"{path}: not a segvit model folder's config (no format: segvit)")
    return config


def fetch_hub_folder(source: str) -> Path:
    """`hf:OWNER/NAME[@REVISION]` -> the local snapshot folder (snapshot_download: the
    Hugging Face cache, HF_ENDPOINT, HF_HUB_OFFLINE apply), or one line saying why not."""
    import httpx2  # huggingface_hub's HTTP client: its errors are the network's
    from huggingface_hub import snapshot_download

    from segvit.modeling.release import _reason

    repo, _, revision = source.removeprefix(HF_PREFIX).partition("@")
    if repo.count("/") != 1 or not all(repo.split("/")):
        raise SegvitError(f"{source}: expected hf:OWNER/NAME (a Hugging Face model repository)")
    try:
        folder = snapshot_download(
            repo, revision=revision or None, allow_patterns=[WEIGHTS, CONFIG, CARD],
            library_name="segvit",
        )  # fmt: skip
    except (OSError, httpx2.HTTPError) as err:  # the hub's errors are OSErrors too
        raise SegvitError(
            f"could not fetch {source} ({_reason(err)}); with no network, `hf download {repo}` "
            "it elsewhere into the same Hugging Face cache (HF_HOME)"
        ) from None
    return Path(folder)
