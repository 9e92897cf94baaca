"""The `tiny` fixture: tests/engine/tiny.py, loaded by path; `one_image_split`: evaluate's
split replaced by one decoded image."""

from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from segvit.engine import evaluate as evaluate_module

TINY = Path(__file__).with_name("tiny.py")


@pytest.fixture(scope="session")
def tiny(load_by_path) -> ModuleType:
    return load_by_path("engine_tiny", TINY)


@pytest.fixture
def one_image_split(monkeypatch):
    """one_image_split(label): `evaluate` reads a split of one black image whose label is the
    (H, W) uint8 array `label`, as SegDataset decodes it."""

    def install(label: np.ndarray) -> None:
        class OneImage:
            def __init__(self, *args, **kwargs) -> None:
                pass

            def __len__(self) -> int:
                return 1

            def __getitem__(self, index: int) -> dict[str, np.ndarray]:
                image = np.zeros((*label.shape, 3), np.uint8)
                return {"image": image, "label": label.copy()}

        monkeypatch.setattr(evaluate_module, "SegDataset", OneImage)

    return install
