"""Mutation test: plant each bug of a set, one at a time, and see whether a test fails.

    python scripts/mutants/run.py                # every mutant of mutants.py; caught/total
    python scripts/mutants/run.py --set behaviours   # the second set (behaviours.py)
    python scripts/mutants/run.py --set families     # the third set (families.py)
    python scripts/mutants/run.py --area loss    # one area
    python scripts/mutants/run.py --only 3,17    # by number (see --list)

The tree (the files git tracks, plus untracked ones it does not ignore) is copied to a
temporary folder once; each mutant is written into that copy, the area's test files run there
(`pytest -x -q`, with the copy first on PYTHONPATH and no bytecode written), and the file is
restored. The real checkout is never modified. Before any mutant runs, every original snippet
must occur exactly once in its file (a stale mutant is an error, not a catch) and the
unmutated copy must pass every test file used. A mutant is caught when pytest reports a
failure or an error (a collection error counts: the bug broke an import) or runs past the
timeout; it survives when every test passes.
"""

from __future__ import annotations

import argparse
import importlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from mutants import Mutant  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]

# The test files each area's mutants are checked against, fastest first (pytest -x stops at
# the first failure): the module's own tests and those that exercise it directly.
AREA_TESTS: dict[str, list[str]] = {
    "loss": ["tests/test_criteria.py", "tests/test_losses.py"],
    "metrics": [
        "tests/test_metrics_merge.py",
        "tests/test_metrics_exclusion.py",
        "tests/test_metrics.py",
        "tests/engine/test_evaluate_context59.py",
        "tests/engine/test_evaluate.py",
    ],
    "inference": [
        "tests/test_inference_windows.py",
        "tests/test_inference.py",
        "tests/engine/test_evaluate.py",
    ],
    "heads": [
        "tests/modeling/test_atm_order.py",
        "tests/modeling/test_heads.py",
        "tests/modeling/test_decoder.py",
        "tests/modeling/test_output.py",
        "tests/modeling/test_release.py",
    ],
    "backbone": [
        "tests/modeling/test_backbone_qd.py",
        "tests/modeling/test_backbone.py",
        "tests/modeling/test_release.py",
    ],
    "transforms": ["tests/data/test_transform_defaults.py", "tests/data/test_transforms.py"],
    "optimiser": [
        "tests/engine/test_optim_adamw.py",
        "tests/engine/test_schedule_end.py",
        "tests/engine/test_optim.py",
        "tests/engine/test_recipe_honoured.py",
        "tests/engine/test_train.py",
    ],
    "recipe": ["tests/engine/test_recipe_schedules.py", "tests/engine/test_recipe.py"],
    "engine": [
        "tests/engine/test_recipe_honoured.py",
        "tests/engine/test_best_weights.py",
        "tests/engine/test_train.py",
    ],
    "evaluation": [
        "tests/engine/test_evaluate_passes.py",
        "tests/engine/test_evaluate_context59.py",
        "tests/engine/test_evaluate.py",
    ],
    "converter": ["tests/modeling/test_release_datasets.py", "tests/modeling/test_release.py"],
    "data-prep": ["tests/data/test_prepare_context_ids.py", "tests/data/test_prepare.py"],
    # The behaviours set (behaviours.py).
    "dataset-spec": [
        "tests/data/test_spec_roundtrip.py",
        "tests/data/test_folder_inputs.py",
        "tests/data/test_dataset_file.py",
        "tests/data/test_folder.py",
        "tests/experiments/test_spec.py",
    ],
    "validation": [
        "tests/data/test_dataset_file_boundaries.py",
        "tests/data/test_dataset_file.py",
        "tests/experiments/test_config.py",
        "tests/test_metrics.py",
        "tests/data/test_folder.py",
    ],
    "resume": ["tests/engine/test_resume_refusals.py", "tests/engine/test_checkpoint.py",
               "tests/engine/test_train.py"],  # fmt: skip
    "loading": ["tests/modeling/test_load_exactly.py", "tests/modeling/test_weights.py",
                "tests/engine/test_checkpoint.py"],  # fmt: skip
    "precedence": ["tests/experiments/test_precedence.py", "tests/engine/test_recipe.py",
                   "tests/experiments/test_spec.py"],  # fmt: skip
    "outputs": ["tests/experiments/test_outputs_apart.py", "tests/experiments/test_config.py",
                "tests/experiments/test_reproduce.py"],  # fmt: skip
    # The families set (families.py): Shrunk's re-computation of timm's blocks.
    "shrunk": ["tests/modeling/test_backbone_qd.py", "tests/modeling/test_backbone.py",
               "tests/modeling/test_shrunk_families.py"],  # fmt: skip
}
SETS = ("mutants", "behaviours", "families")  # the modules of planted bugs, each numbered from 1


@dataclass(frozen=True)
class Outcome:
    mutant: Mutant
    number: int
    verdict: str  # "caught", "caught (timeout)", "survived" or "error"
    seconds: float
    detail: str  # the failing test, or pytest's last line


def stale(mutants: list[tuple[int, Mutant]]) -> list[str]:
    """One line per mutant whose original snippet does not occur exactly once."""
    problems = []
    for number, m in mutants:
        path = ROOT / m.path
        count = path.read_text().count(m.original) if path.is_file() else 0
        if m.area not in AREA_TESTS:
            problems.append(f"#{number} {m.path}: unknown area {m.area!r}")
        elif count != 1:
            problems.append(f"#{number} {m.path}: original occurs {count} times ({m.description})")
    return problems


def copy_tree(dest: Path) -> None:
    """The files git tracks and the untracked ones it does not ignore, into `dest`."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, check=True, capture_output=True,
    ).stdout.decode().split("\0")  # fmt: skip
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_symlink():  # e.g. experiments/ -> segvit/experiments/configs
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            os.symlink(os.readlink(source), dest / name)
        elif source.is_file():  # a tracked file deleted in the work tree is skipped
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)


def pytest(tree: Path, files: list[str], timeout: float) -> tuple[int | None, str]:
    """(pytest's exit status or None on timeout, its output) for `files` in `tree`."""
    env = os.environ | {"PYTHONPATH": str(tree), "PYTHONDONTWRITEBYTECODE": "1",
                        "SEGVIT_HYPOTHESIS": "mutants"}  # fmt: skip
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *files]
    try:
        done = subprocess.run(
            command, cwd=tree, env=env, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return None, ""
    return done.returncode, done.stdout + done.stderr


def _imported_from(tree: Path) -> Path:
    """The segvit package a test process started in `tree` imports (must be the copy's)."""
    env = os.environ | {"PYTHONPATH": str(tree), "PYTHONDONTWRITEBYTECODE": "1"}
    code = "import segvit, pathlib; print(pathlib.Path(segvit.__file__).resolve().parent)"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tree, env=env, capture_output=True, text=True
    )
    return Path(done.stdout.strip()) if done.returncode == 0 else Path("?")


def _detail(output: str) -> str:
    failed = [line for line in output.splitlines() if line.startswith(("FAILED", "ERROR"))]
    lines = [line for line in output.splitlines() if line.strip()]
    return (failed or lines or [""])[0][:160]


def run_mutant(tree: Path, number: int, m: Mutant, timeout: float) -> Outcome:
    path = tree / m.path
    original = path.read_text()
    path.write_text(original.replace(m.original, m.replacement, 1))
    began = time.perf_counter()
    try:
        status, output = pytest(tree, AREA_TESTS[m.area], timeout)
    finally:
        path.write_text(original)
    seconds = time.perf_counter() - began
    if status is None:
        verdict = "caught (timeout)"
    elif status == 0:
        verdict = "survived"
    elif status in (1, 2):  # tests failed / errors (collection included)
        verdict = "caught"
    else:  # 3-5: pytest internal or usage error, no tests: the runner's fault
        verdict = "error"
    return Outcome(m, number, verdict, seconds, _detail(output))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", choices=SETS, default="mutants", help="which planted bugs")
    parser.add_argument("--area", choices=sorted(AREA_TESTS), help="only this area's mutants")
    parser.add_argument("--only", help="comma-separated mutant numbers (1-based, see --list)")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per mutant")
    parser.add_argument("--no-baseline", action="store_true", help="skip the unmutated run")
    parser.add_argument("--list", action="store_true", help="print the mutants and exit")
    args = parser.parse_args()

    chosen = list(enumerate(importlib.import_module(args.set).MUTANTS, start=1))
    if args.area:
        chosen = [(n, m) for n, m in chosen if m.area == args.area]
    if args.only:
        wanted = {int(n) for n in args.only.split(",")}
        chosen = [(n, m) for n, m in chosen if n in wanted]
    if args.list:
        for n, m in chosen:
            print(f"#{n:<3} {m.area:<11} {m.path}: {m.description}")
        return 0
    problems = stale(chosen)
    if problems:
        print("stale mutants (fix the list first):", *problems, sep="\n  ", file=sys.stderr)
        return 2

    with tempfile.TemporaryDirectory(prefix="segvit-mutants-") as tmp:
        tree = Path(tmp)
        copy_tree(tree)
        imported = _imported_from(tree)
        if imported != tree / "segvit":
            print(f"the tests would import segvit from {imported}, not the copy", file=sys.stderr)
            return 2
        if not args.no_baseline:
            files = sorted({f for _, m in chosen for f in AREA_TESTS[m.area]})
            status, output = pytest(tree, files, args.timeout * 4)
            if status != 0:
                print(f"the unmutated tree fails its tests:\n{output[-3000:]}", file=sys.stderr)
                return 2
            print(f"baseline: {len(files)} test files pass on the unmutated tree", flush=True)
        outcomes = []
        for number, m in chosen:
            outcome = run_mutant(tree, number, m, args.timeout)
            outcomes.append(outcome)
            print(f"#{number:<3} {outcome.verdict:<16} {outcome.seconds:6.1f}s  {m.area:<11} "
                  f"{m.description}", flush=True)  # fmt: skip

    errors = [o for o in outcomes if o.verdict == "error"]
    survivors = [o for o in outcomes if o.verdict == "survived"]
    caught = [o for o in outcomes if o.verdict.startswith("caught")]
    print(f"\ncaught {len(caught)}/{len(outcomes)} ({100 * len(caught) / len(outcomes):.0f}%)")
    for o in survivors:
        print(f"  survived #{o.number} {o.mutant.path}: {o.mutant.description}")
    for o in errors:
        print(f"  ERROR #{o.number} {o.mutant.path}: {o.detail}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
