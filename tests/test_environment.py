"""constraints.txt against pyproject.toml and the Makefile: every requirement is pinned to a
version its range admits, and `make install` installs within the pins (uv or pip)."""

import os
import re
import subprocess
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

tomllib = pytest.importorskip("tomllib")  # Python 3.11+; make installs with 3.11
ROOT = Path(__file__).parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def pins() -> dict[str, str]:
    found = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"constraints.txt: {line!r} is no NAME==VERSION pin"
            found[canonicalize_name(name)] = version
    return found


def requirements() -> list[Requirement]:
    extras = PROJECT["optional-dependencies"]
    return [Requirement(r) for r in PROJECT["dependencies"] + extras["dev"] + extras["tensorboard"]]


def test_every_requirement_is_pinned_within_its_range():
    pinned = pins()
    for requirement in requirements():
        name = canonicalize_name(requirement.name)
        assert name in pinned, f"{requirement.name} has no pin in constraints.txt"
        assert requirement.specifier.contains(pinned[name], prereleases=True), (
            f"constraints.txt pins {name}=={pinned[name]}, outside pyproject's {requirement}"
        )


@pytest.mark.parametrize("name", ["torch", "timm", "numpy"])
def test_the_next_major_of_what_segvit_reaches_into_is_excluded(name):
    (requirement,) = [r for r in requirements() if r.name == name]
    major = int(pins()[name].split(".")[0])
    assert not requirement.specifier.contains(f"{major + 1}.0"), f"{requirement} admits {major + 1}"


def test_make_installs_within_the_pins_and_reinstalls_when_they_change(tmp_path):
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^\$\(STAMP\): pyproject.toml \$\(CONSTRAINTS\)$", makefile, flags=re.M)
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    dry = subprocess.run(  # under `make test`, the outer make's flags stay out
        ["make", "-n", "install", f"VENV={tmp_path / 'venv'}", f"UV_HOME={tmp_path / 'uv'}"],
        cwd=ROOT, env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    # Both branches, uv and its pip fallback, are given the constraints.
    assert dry.stdout.count("-c constraints.txt") >= 2, dry.stdout
    assert f"uv=={pins()['uv']}" in dry.stdout  # the bootstrap takes the pinned uv
