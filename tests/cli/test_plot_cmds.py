"""`segvit plot curves` through the real entry point; `segvit plot figure4` (`plot figure
figure4`) refuses run folders (its own test is the tiny sweep in test_reproduce_cmds.py)."""

import json


def write_run(folder, losses):
    """A work dir whose log.jsonl has one training record per loss, every 10 iterations."""
    folder.mkdir(parents=True)
    records = [
        {"kind": "train", "iter": 10 * (i + 1), "loss": loss, "lr": 1e-3}
        for i, loss in enumerate(losses)
    ]
    records.append({"kind": "eval", "iter": 10 * len(losses), "mIoU": 5.0})
    (folder / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return folder


def test_plot_curves_command_writes_a_png(cli, tmp_path):
    a = write_run(tmp_path / "run-a", [3.0, 2.0])
    b = write_run(tmp_path / "run-b", [4.0, 3.0, 1.0])
    out = tmp_path / "pictures" / "curves.png"
    code, stdout, err = cli("plot", "curves", a, b, "--out", out)
    assert code in (0, None), err
    assert out.read_bytes().startswith(b"\x89PNG") and "curves.png" in stdout.replace("\n", "")
    code, _, _ = cli("plot", "curves", a, "--results", tmp_path / "results")
    assert code in (0, None) and (tmp_path / "results" / "curves.png").is_file()


def test_plot_errors_are_one_line(cli, tmp_path):
    bad = write_run(tmp_path / "bad", [])
    (bad / "log.jsonl").write_text("garbage\n")
    code, _, err = cli("plot", "curves", bad, "--out", tmp_path / "x.png")
    assert code == 1 and len(err.strip().splitlines()) == 1 and "log.jsonl:1" in err
    assert not (tmp_path / "x.png").exists()  # nothing half-written
    code, _, err = cli("plot", "figure4", bad)  # a figure takes no run folders
    assert code == 2 and "unexpected extra argument" in err
