"""Training curves: what each panel draws from hand-written log.jsonl files, the run labels,
and one-line errors for missing, empty or corrupt logs."""

import json

import pytest

from segvit.analysis.curves import curves_figure, draw_curves, load_run, read_records
from segvit.errors import SegvitError


def write_run(folder, records, *, config=None, cut=""):
    """A work dir with log.jsonl (one JSON record a line, then `cut` without a newline)."""
    folder.mkdir(parents=True)
    lines = "".join(json.dumps(r) + "\n" for r in records)
    (folder / "log.jsonl").write_text(lines + cut)
    if config is not None:
        (folder / "config.json").write_text(json.dumps(config))
    return folder


def train(iteration, loss, lr, **more):
    return {"kind": "train", "iter": iteration, "loss": loss, "lr": lr, "memory_mb": 9.0, **more}


RUN_A = [
    train(10, 3.0, 1e-3, loss_cls=1.0, loss_dice=2.0, lr_head=1e-2),
    train(20, 2.5, 5e-4, loss_cls=0.8, loss_dice=1.7, lr_head=5e-3),
    {"kind": "eval", "iter": 20, "mIoU": 12.5, "aAcc": 40.0, "IoU": [1.0, 2.0]},
    train(30, 2.0, 1e-4, loss_cls=0.5, loss_dice=None, lr_head=1e-3),  # NaN logged as null
    {"kind": "eval", "iter": 30, "mIoU": 20.0, "aAcc": 45.0, "IoU": [3.0, 4.0]},
]
RUN_B = [train(10, 4.0, 2e-3), train(20, 3.5, 1e-3)]  # a plain loss, no evaluation


def _panels(fig):
    return {ax.get_title(): ax for ax in fig.axes if ax.get_visible() and ax.get_title()}


def test_each_loss_term_the_lrs_and_miou_of_every_run(tmp_path):
    a = write_run(tmp_path / "run-a", RUN_A, config={"variant": "setr_b", "recipe": "smoke"})
    b = write_run(tmp_path / "run-b", RUN_B)
    fig = curves_figure([load_run(a), load_run(b)])
    panels = _panels(fig)
    assert list(panels) == [
        "loss", "loss_cls", "loss_dice", "learning rate", "validation mIoU (%)",
    ]  # fmt: skip
    first, second = panels["loss"].get_lines()[:2]  # one line per run, in the order given
    assert list(first.get_xdata()) == [10, 20, 30] and list(first.get_ydata()) == [3.0, 2.5, 2.0]
    assert list(second.get_xdata()) == [10, 20] and list(second.get_ydata()) == [4.0, 3.5]
    assert first.get_color() != second.get_color()
    dice = panels["loss_dice"].get_lines()[0]
    assert list(dice.get_xdata()) == [10, 20]  # the null at 30 is left out, not drawn as 0
    lines = panels["learning rate"].get_lines()
    drawn = {
        (tuple(line.get_xdata()), tuple(line.get_ydata()), line.get_linestyle()) for line in lines
    }
    assert ((10, 20, 30), (1e-3, 5e-4, 1e-4), "-") in drawn  # backbone lr solid
    assert ((10, 20, 30), (1e-2, 5e-3, 1e-3), "--") in drawn  # head lr dashed
    miou = panels["validation mIoU (%)"].get_lines()[0]
    assert list(miou.get_xdata()) == [20, 30] and list(miou.get_ydata()) == [12.5, 20.0]
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == ["run-a (setr_b, smoke)", "run-b"]


def test_a_row_folder_is_read_through_its_train_folder(tmp_path):
    write_run(tmp_path / "single-setr" / "train", RUN_B, config={"variant": "setr_b"})
    run = load_run(tmp_path / "single-setr")
    assert run.label == "single-setr (setr_b)" and run.series("loss") == ([10, 20], [4.0, 3.5])


def test_a_last_line_cut_by_a_kill_is_skipped_any_other_bad_line_is_an_error(tmp_path):
    log = write_run(tmp_path / "cut", RUN_B, cut='{"kind": "train", "it') / "log.jsonl"
    assert len(read_records(log)) == 2
    log.write_text(json.dumps(RUN_B[0]) + "\nnot json\n" + json.dumps(RUN_B[1]) + "\n")
    with pytest.raises(SegvitError, match=rf"{log}:2: not a JSON record"):
        read_records(log)
    log.write_text('{"kind": "train"}\n')
    with pytest.raises(SegvitError, match=rf"{log}:1: expected a record with an 'iter'"):
        read_records(log)


def test_missing_or_empty_logs_and_no_runs(tmp_path):
    with pytest.raises(SegvitError, match=rf"{tmp_path / 'nothing'}: no log.jsonl"):
        load_run(tmp_path / "nothing")
    empty = write_run(tmp_path / "empty", [])
    with pytest.raises(SegvitError, match=rf"{empty / 'log.jsonl'} has no records"):
        load_run(empty)
    evals = write_run(tmp_path / "evals", [{"kind": "eval", "iter": 5, "mIoU": 1.0}])
    with pytest.raises(SegvitError, match="no training record with a loss"):
        draw_curves([evals], tmp_path / "x.png")
    with pytest.raises(SegvitError, match="at least one RUN_DIR"):
        draw_curves([], tmp_path / "x.png")


def test_one_evaluation_is_a_marked_point_on_the_whole_run_axis(tmp_path):
    """A smoke run of 20 iterations: two logged points and one evaluation at the end; every
    panel spans 0 to the run's end and every point is marked, so none looks empty."""
    evaluation = {"kind": "eval", "iter": 20, "mIoU": 7.0}
    records = [train(10, 3.0, 1e-3), train(20, 2.5, 5e-4), evaluation]
    fig = curves_figure([load_run(write_run(tmp_path / "short", records))])
    for title, ax in _panels(fig).items():
        low, high = ax.get_xlim()
        assert low == 0 and 20 < high < 22, title
        assert all(line.get_marker() == "o" for line in ax.get_lines() if len(line.get_xdata()))
    miou = _panels(fig)["validation mIoU (%)"]
    assert miou.get_ylim()[0] == 0 and list(miou.get_lines()[0].get_xdata()) == [20]


@pytest.mark.parametrize(("name", "magic"), [("c.png", b"\x89PNG"), ("c.JPG", b"\xff\xd8\xff")])
def test_the_picture_is_in_the_format_its_name_says(tmp_path, name, magic):
    run = write_run(tmp_path / "run", RUN_B)
    assert draw_curves([run], tmp_path / name).read_bytes()[:4].startswith(magic)


def test_an_unknown_picture_suffix_is_refused_before_reading_logs(tmp_path):
    with pytest.raises(SegvitError, match=r"--out .*c.gif: expected a .png, .jpg, .pdf or .svg"):
        draw_curves([tmp_path / "no-such-run"], tmp_path / "c.gif")
    assert not (tmp_path / "c.gif").exists()
