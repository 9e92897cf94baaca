"""The `fakes` fixture: tests/modeling/release_fakes.py loaded by path (tests have no package)."""

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

FAKES = Path(__file__).with_name("release_fakes.py")


def load_fakes() -> ModuleType:
    if "release_fakes" not in sys.modules:  # registered so its dataclasses resolve their module
        spec = importlib.util.spec_from_file_location("release_fakes", FAKES)
        module = importlib.util.module_from_spec(spec)
        sys.modules["release_fakes"] = module
        spec.loader.exec_module(module)
    return sys.modules["release_fakes"]


@pytest.fixture(scope="session")
def fakes() -> ModuleType:
    return load_fakes()
