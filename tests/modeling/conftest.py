"""The `fakes` fixture: tests/modeling/release_fakes.py, loaded by path."""

from pathlib import Path
from types import ModuleType

import pytest

FAKES = Path(__file__).with_name("release_fakes.py")


@pytest.fixture(scope="session")
def fakes(load_by_path) -> ModuleType:
    return load_by_path("release_fakes", FAKES)
