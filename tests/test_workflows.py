"""The GPU workflow (.github/workflows/gpu.yml) and `make gpu-check`, checked on a CPU: the
inputs, the order of the steps, the commands and options they call exist, the settings
script resolves and refuses what it should, and GPU tests stay out of the default run."""

import ast
import os
import re
import subprocess
from pathlib import Path

import pytest
import typer
import yaml

from segvit.cli import app
from segvit.experiments.sweep import TABLES
from segvit.modeling.weights import weights_dir

ROOT = Path(__file__).parents[1]
WORKFLOW = yaml.safe_load((ROOT / ".github" / "workflows" / "gpu.yml").read_text())
TRIGGERS = WORKFLOW.get("on", WORKFLOW.get(True))  # YAML 1.1 reads a bare `on` as True
GPU_JOB = WORKFLOW["jobs"]["gpu"]
STEPS = GPU_JOB["steps"]


def step(fragment: str) -> tuple[int, dict]:
    """The index and step whose name (or action) contains `fragment`."""
    found = [(i, s) for i, s in enumerate(STEPS) if fragment in s.get("name", s.get("uses", ""))]
    assert len(found) == 1, fragment
    return found[0]


def test_dispatch_inputs_and_schedule():
    inputs = TRIGGERS["workflow_dispatch"]["inputs"]
    assert set(inputs) == {"runner", "table", "gpus", "data_path", "state_path", "mode"}
    assert inputs["table"]["options"] == ["all", *TABLES, "release"]
    assert inputs["gpus"]["type"] == "number" and inputs["gpus"]["default"] == 8
    assert inputs["mode"]["options"] == ["sweep", "check"]
    assert re.fullmatch(r"[\d*]+ [\d*]+ [\d*]+ [\d*]+ [\d*]+", TRIGGERS["schedule"][0]["cron"])
    # No runner named in the repository's variables: the schedule does nothing.
    assert "vars.SEGVIT_GPU_RUNNER != ''" in WORKFLOW["jobs"]["settings"]["if"]


def test_steps_check_first_then_sweep_then_upload():
    order = [step(name)[0] for name in ("actions/checkout", "Install", "GPU check", "Plan",
                                        "Prepare missing", "Reproduce", "Upload")]  # fmt: skip
    assert order == sorted(order)
    assert "make install" in step("Install")[1]["run"]
    assert "make gpu-check" in step("GPU check")[1]["run"]
    sweep = step("Reproduce")[1]
    assert "make all-tables" in sweep["run"] and 'segvit reproduce "$TABLE"' in sweep["run"]
    for option in ("--preset paper", '--gpus "$GPUS"', '--data-root "$SEGVIT_DATA"',
                   '--runs "$SEGVIT_RUNS"'):  # fmt: skip
        assert option in sweep["run"]
    assert (
        sweep["if"] == step("Prepare missing")[1]["if"] == "needs.settings.outputs.mode == 'sweep'"
    )
    upload = step("Upload")[1]
    assert upload["uses"].startswith("actions/upload-artifact@") and upload["if"] == "always()"
    paths = upload["with"]["path"].splitlines()
    assert {"results/", "logs/", "${{ env.SEGVIT_RUNS }}/**/log.jsonl"} <= set(paths)


def test_state_lives_on_the_runner(monkeypatch):
    env = GPU_JOB["env"]
    assert env["SEGVIT_DATA"] == "${{ needs.settings.outputs.data }}"
    for name in ("SEGVIT_RUNS", "SEGVIT_WEIGHTS", "SEGVIT_VENV", "PIP_CACHE_DIR"):
        assert env[name].startswith("${{ needs.settings.outputs.state }}/"), name
    monkeypatch.setenv("SEGVIT_WEIGHTS", "/var/lib/segvit/weights")
    assert weights_dir() == Path("/var/lib/segvit/weights")  # the variable segvit reads
    assert GPU_JOB["runs-on"] == "${{ fromJSON(needs.settings.outputs.runner) }}"
    assert WORKFLOW["concurrency"]["cancel-in-progress"] is False  # never two sweeps on runs/


def options(*path: str) -> set[str]:
    command = typer.main.get_command(app)
    for name in path:
        command = command.commands[name]
    return {opt for param in command.params for opt in param.opts}


def test_commands_and_options_the_workflow_uses_exist():
    text = (ROOT / ".github" / "workflows" / "gpu.yml").read_text()
    assert re.findall(r"segvit reproduce .*--plan --json", text)
    assert {"--plan", "--json", "--preset", "--gpus", "--data-root", "--runs"} <= options(
        "reproduce"
    )
    assert {"--save", "--runs", "--batch", "--crop"} <= options("bench", "train")
    assert "--root" in options("prepare", "dataset")  # `segvit prepare NAME` is that command
    makefile = (ROOT / "Makefile").read_text()
    for target in ("install", "gpu-check", "all-tables"):
        assert re.search(rf"^{target}:", makefile, flags=re.M), target
    for variable in ("VENV", "PYTHON", "GPUS", "DATA", "RUNS"):
        assert re.search(rf"\$\({variable}\)", makefile), variable


def resolve(tmp_path, **env) -> tuple[int, dict[str, str], str]:
    """Run the settings job's script as the runner would."""
    script = WORKFLOW["jobs"]["settings"]["steps"][0]["run"]
    output = tmp_path / "output"
    output.unlink(missing_ok=True)
    defaults = {"RUNNER": '["self-hosted", "gpu"]', "TABLE": "all", "GPUS": "8",
                "DATA": "/data/segvit", "STATE": "/var/lib/segvit", "MODE": "sweep"}  # fmt: skip
    env = os.environ | defaults | env | {"GITHUB_OUTPUT": str(output)}
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env)
    lines = output.read_text().splitlines() if output.exists() else []
    return done.returncode, dict(line.split("=", 1) for line in lines), done.stdout


def test_settings_script_resolves_labels_and_checks_values(tmp_path):
    code, out, _ = resolve(tmp_path, TABLE="table8", GPUS="4")
    assert code == 0
    assert out == {"runner": '["self-hosted", "gpu"]', "table": "table8", "gpus": "4",
                   "data": "/data/segvit", "state": "/var/lib/segvit", "mode": "sweep"}  # fmt: skip
    code, out, _ = resolve(tmp_path, RUNNER="h100-box")
    assert code == 0 and out["runner"] == '["h100-box"]'


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"TABLE": "table10"}, "::error::table 'table10'"),
        ({"GPUS": "0"}, "::error::gpus '0'"),
        ({"MODE": "train"}, "::error::mode 'train'"),
        ({"DATA": "data"}, "::error::'data': expected an absolute path"),
    ],
)
def test_settings_script_refuses_bad_values(tmp_path, env, message):
    code, out, stdout = resolve(tmp_path, **env)
    assert code == 1 and out == {} and message in stdout


def test_gpu_tests_stay_out_of_the_default_run():
    addopts = re.search(r"addopts = \"(.*)\"", (ROOT / "pyproject.toml").read_text()).group(1)
    assert "not gpu" in addopts
    modules = sorted((ROOT / "tests" / "gpu").glob("test_*.py"))
    assert len(modules) >= 5
    for module in modules:
        tree = ast.parse(module.read_text())
        marks = [ast.unparse(node.value) for node in tree.body if isinstance(node, ast.Assign)
                 and any(getattr(t, "id", "") == "pytestmark" for t in node.targets)]  # fmt: skip
        assert marks == ["pytest.mark.gpu"], module.name
    rule = re.search(r"^gpu-check:.*\n\t(.*)$", (ROOT / "Makefile").read_text(), flags=re.M)
    assert "pytest tests/gpu -m gpu -rs" in rule.group(1)
    assert (ROOT / ".ci" / "run").read_text().rstrip().endswith("exec make test")  # CPU CI as is
