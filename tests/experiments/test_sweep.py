"""One sweep, checked once; `reproduce --plan` lists exactly the stages `reproduce` runs."""

import json
from types import SimpleNamespace

import pytest

from segvit.engine.recipe import get_recipe
from segvit.errors import SegvitError
from segvit.experiments import reproduce as sweep_run
from segvit.experiments.launch import Launch
from segvit.experiments.plan import make_plan
from segvit.experiments.sweep import STAGES, RowFiles, RowState, Sweep, row_stages

TABLE = """\
table: table0
caption: "every state a row can be in"
metrics: [miou_ss, gflops]
rows:
  - {name: fresh, variant: setr_b, dataset: ade20k}
  - {name: trained, variant: atm_single_b, dataset: ade20k}
  - {name: evaluated, variant: naive_shrunk_b, dataset: ade20k}
  - {name: failed, variant: segvit_shrunk_b, dataset: ade20k}
  - {name: released, variant: segvit_b, dataset: ade20k, crop: 512, release: ade_51.3}
  - {name: peer, variant: null, dataset: ade20k}
"""


@pytest.fixture
def places(tmp_path, monkeypatch):
    """runs/: a row never run, one trained but not scored, one done, one whose training was
    killed (a checkpoint and a log, no final.pt), and a released row without its weights."""
    monkeypatch.setenv("SEGVIT_WEIGHTS", str(tmp_path / "weights"))
    experiments = tmp_path / "experiments"
    experiments.mkdir()
    (experiments / "table0.yaml").write_text(TABLE)
    runs = tmp_path / "runs" / "table0" / "smoke"

    def state(slug, measured, status="missing miou_ss", final=False):
        folder = runs / slug
        folder.mkdir(parents=True)
        (folder / "row.json").write_text(json.dumps({"status": status, "measured": measured}))
        if final:
            (folder / "final.pt").write_bytes(b"weights")
        return folder

    state("trained", {"gflops": 1.0}, final=True)
    state("evaluated", {"gflops": 1.0, "miou_ss": 9.0}, status="done", final=True)
    work = state("failed", {"gflops": 1.0}) / "train"
    work.mkdir()
    (work / "last.state.pt").write_bytes(b"state")
    (work / "log.jsonl").write_text('{"kind": "train", "iter": 50}\n{"kind": "tr')
    return Sweep(get_recipe("smoke"), tables=["table0"], results=tmp_path / "results",
                 runs_dir=tmp_path / "runs", data_root=tmp_path / "data",
                 experiments=experiments)  # fmt: skip


def run_reproduce(sweep, monkeypatch):
    """The stages `reproduce` runs, per row, in order (stand-ins for each stage's work)."""
    ran: dict[str, list[str]] = {}

    def count(model):
        ran.setdefault(model, []).append("flops")
        return SimpleNamespace(gflops=1.0)

    def train(row, recipe, run_dir):
        ran.setdefault(row.name, []).append("train")
        RowFiles(run_dir).train.work_dir.mkdir(parents=True, exist_ok=True)
        RowFiles(run_dir).train.last.write_bytes(b"weights")
        return RowFiles(run_dir).train.last

    def evaluate(row, recipe, weights, modes):
        ran.setdefault(row.name, []).append("eval")
        return {"miou_ss": 1.0}

    monkeypatch.setattr(sweep_run, "flops_experiment", lambda row: SimpleNamespace(
        build_model=lambda for_flops: row.name))  # fmt: skip
    monkeypatch.setattr(sweep_run, "count_flops", count)
    (table,) = sweep.load_tables()
    sweep_run.reproduce(table, sweep, train_fn=train, eval_fn=evaluate,
                        release_eval_fn=pytest.fail)  # fmt: skip
    return ran


@pytest.mark.parametrize("stages", [STAGES, ("train", "eval"), ("eval",), ("flops",)])
def test_the_plan_lists_exactly_what_reproduce_runs(places, monkeypatch, stages):
    sweep = Sweep(**{**vars(places), "stages": stages})
    plan = make_plan(sweep)
    planned = {row.row: list(row.run) for row in plan.rows if row.run}
    assert planned == run_reproduce(sweep, monkeypatch)
    if stages == STAGES:
        assert planned == {
            "fresh": ["flops", "train", "eval"],
            "trained": ["eval"],
            "failed": ["train", "eval"],
            "released": ["flops"],
        }
        by_row = {row.row: row for row in plan.rows}
        assert by_row["evaluated"].status == "done"
        assert by_row["failed"].resumes_at == 0  # 50 iterations logged, none checkpointed
        assert "no weights: segvit weights fetch ade_51.3" in by_row["released"].skipped
        assert by_row["peer"].status == "not implemented"
    again = make_plan(sweep)  # what ran is on disk: the plan has nothing left but the blocked
    assert [row.row for row in again.rows if row.run] == []


def test_row_stages_by_hand(places):
    (table,) = places.load_tables()
    fresh, trained = table.rows[0], table.rows[1]
    nothing = RowState({}, trained=False)
    assert row_stages(places, table, fresh, nothing).run == ("flops", "train", "eval")
    evals = Sweep(**{**vars(places), "stages": ("eval",)})
    assert row_stages(evals, table, fresh, nothing).skipped == (
        "eval: no final.pt and training not asked",
    )
    state = RowState.read(places.row_files(table, trained))
    assert state == RowState({"gflops": 1.0}, trained=True)
    assert row_stages(places, table, trained, state).skipped == (
        "flops: counted",
        "train: final.pt exists",
    )


def test_a_sweep_is_checked_once_on_construction():
    smoke = get_recipe("smoke")
    with pytest.raises(SegvitError, match="--only fit: expected one of flops, train, eval"):
        Sweep(smoke, stages=["fit"])
    with pytest.raises(SegvitError, match="--weights hub: expected one of train, release"):
        Sweep(smoke, weights="hub")
    launch = Launch(gpus=8, nnodes=2, node_rank=0, rdzv_endpoint="node001:29500")
    with pytest.raises(SegvitError, match="--nnodes 2: run `--only train` on every node"):
        Sweep(smoke, launch=launch)
    sweep = Sweep(smoke, tables=["table8", "table8"], rows=["1"])
    assert sweep.tables == ("table8", "table8") and sweep.table_names == ["table8"]
    assert sweep.out_dir.name == "smoke" and sweep.state_dir == "smoke"
    assert Sweep(smoke, weights="release").state_dir == "release-weights"
    assert Sweep(smoke, tables=["all"]).table_names == [f"table{i}" for i in range(1, 10)]
    with pytest.raises(SegvitError, match="no experiment 'table99'"):
        Sweep(smoke, tables=["table99"]).load_tables()
