"""Shared fixtures: `build_peer` (the one place the tests turn a PEER_VARIANTS row into a
Segmentor) and `load_by_path` (helper modules of a test folder; tests have no package)."""

import importlib.util
import os
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest
import torch
from hypothesis import Phase, settings

from segvit.modeling.peers import PEER_VARIANTS
from segvit.modeling.segmentor import ModelMeta, Segmentor
from segvit.modeling.specs import tiny as tiny_spec

# Property tests (hypothesis): the same examples on every run and machine, no example
# database left in the checkout, no per-example deadline (a loaded machine is slow). The
# mutation runner (scripts/mutants) needs only pass or fail: it skips shrinking a failure.
settings.register_profile("segvit", database=None, derandomize=True, deadline=None)
settings.register_profile(
    "mutants", settings.get_profile("segvit"), phases=[Phase.explicit, Phase.generate]
)
settings.load_profile(os.environ.get("SEGVIT_HYPOTHESIS", "segvit"))


def _build_peer(
    name: str, *, num_classes: int, crop: int, tiny: bool = False, build: Callable | None = None
) -> Segmentor:
    """The row `name` (its spec; its builder unless `build` replaces it) as a Segmentor."""
    _, spec, row_build, _ = PEER_VARIANTS[name]
    build = build or row_build
    if tiny:
        spec = tiny_spec(spec)
    torch.manual_seed(0)
    backbone, head = build(spec, num_classes, crop)
    meta = ModelMeta(name, num_classes, crop, tiny)
    return Segmentor(backbone=backbone, head=head, meta=meta)


@pytest.fixture(scope="session")
def build_peer() -> Callable[..., Segmentor]:
    return _build_peer


def _load_by_path(name: str, path: Path) -> ModuleType:
    """The module at `path`, imported once and registered as `name`, so pickles (DataLoader
    workers) and dataclasses can find it again."""
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.fixture(scope="session")
def load_by_path() -> Callable[[str, Path], ModuleType]:
    return _load_by_path


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Callable[..., Path]:
    """tiny_checkpoint(variant="segvit_b", crop=64, backbone=None) -> a weights file of that
    tiny random model (on timm backbone `backbone`, if given) as `segvit train` writes one,
    trained on "demo" (8 classes); made once a session."""
    from segvit.data.catalog import get_dataset
    from segvit.engine.checkpoint import save_weights, weights_meta
    from segvit.modeling.variants import build_model

    made: dict[tuple[str, int, str | None], Path] = {}

    def make(variant: str = "segvit_b", crop: int = 64, backbone: str | None = None) -> Path:
        if (variant, crop, backbone) not in made:
            torch.manual_seed(0)
            model = build_model(variant, num_classes=8, crop=crop, tiny=True, backbone=backbone)
            demo = get_dataset("demo")
            record = {"trained_on": demo.name, "dataset_spec": demo.to_record(), "recipe": "smoke"}
            path = tmp_path_factory.mktemp(f"{variant}-{crop}") / "best.pt"
            save_weights(path, model.state_dict(), weights_meta(model, record=record, iteration=7))
            made[variant, crop, backbone] = path
        return made[variant, crop, backbone]

    return make
