"""docs/python-api.md's examples run as they stand: every ```python block, in order."""

import re
from pathlib import Path

import numpy as np
import torch
from PIL import Image

DOC = Path(__file__).parents[1] / "docs" / "python-api.md"


def python_blocks(text: str) -> list[str]:
    """The blocks fenced exactly ```python (```python skip blocks are shown, not run)."""
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


def test_the_page_runs(tmp_path, monkeypatch, tiny_checkpoint):
    import shutil

    from segvit.api import load
    from segvit.export.folder import export_folder
    from segvit.export.onnx import export_onnx

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs" / "demo").mkdir(parents=True)
    shutil.copy(tiny_checkpoint("segvit_b"), "runs/demo/best.pt")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (120, 160, 3), np.uint8)).save("photo.jpg")
    model = load("runs/demo/best.pt", device="cpu")
    export_folder(model.network, model.record, model.dataset, Path("mymodel"))
    export_onnx(model.network, model.record, model.dataset, Path("model.onnx"))

    blocks = python_blocks(DOC.read_text())
    assert len(blocks) >= 6
    namespace: dict = {}
    try:
        for block in blocks:
            exec(compile(block, str(DOC), "exec"), namespace)  # noqa: S102
    finally:
        torch.set_num_threads(threads)
    assert Path("overlay.png").is_file()
    assert namespace["onnx_model"].backend == "onnx"
