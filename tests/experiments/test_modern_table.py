"""experiments/modern.yaml and `backbone:` in a table row: checked without building a model,
errors naming the file and the key."""

from pathlib import Path

import pytest

from segvit.errors import SegvitError
from segvit.experiments.config import load_table
from segvit.experiments.reproduce import flops_experiment
from segvit.experiments.sweep import EXPERIMENTS
from segvit.modeling.families import find_family


def test_modern_rows_name_a_backbone_and_a_sourced_reference():
    table = load_table(EXPERIMENTS / "modern.yaml")
    assert table.metrics == ["miou_ss", "miou_ms", "gflops"]
    families = [find_family(row.backbone).key for row in table.rows]
    assert families == ["dinov2_reg", "dinov2_reg", "dinov3", "dinov3", "eva02", "eva02",
                        "beitv2", "dinov2_reg", "dinov3", "eva02", "beitv2"]  # fmt: skip
    cascade = [row for row in table.rows if row.variant == "segvit"]
    references = [row.labels["reference"].split()[0] for row in cascade]
    assert references == ["51.3", "53.1", "51.8", "54.9", "55.3", "59.8", "58.0"]
    assert all(row.labels["source"] for row in table.rows)
    shrunk = [row for row in table.rows if row.variant == "segvit_shrunk"]
    assert [row.backbone for row in shrunk] == [
        row.backbone for row in cascade if "large" in row.backbone
    ]
    experiment = flops_experiment(table.rows[0])
    assert (experiment.backbone, experiment.crop) == (table.rows[0].backbone, 512)


def _table(tmp_path: Path, row: str) -> Path:
    path = tmp_path / "bad.yaml"
    path.write_text(f"table: bad\ncaption: c\nmetrics: [miou_ss]\nrows: [{row}]\n")
    return path


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("{name: a, variant: segvit, backbone: resnet50, dataset: ade20k}",
         r"bad\.yaml: rows\[0\]\.backbone: --backbone resnet50: not a ViT family"),
        ("{name: a, variant: setr_b, backbone: deit3_base_patch16_224, dataset: ade20k}",
         r"bad\.yaml: rows\[0\]\.backbone: setr_b keeps its own backbone"),
        ("{name: a, variant: segvit, backbone: vit_base_patch14_dinov2, dataset: ade20k, "
         "crop: 10}", r"bad\.yaml: rows\[0\]\.crop: 10: expected at least 14 \(the patch size\)"),
        ("{name: a, variant: segvit_b, dataset: ade20k, crop: 500}",
         r"bad\.yaml: rows\[0\]\.crop: 500: expected a positive multiple of 16"),
    ],
)  # fmt: skip
def test_a_bad_backbone_row_names_file_and_key(tmp_path, row, message):
    with pytest.raises(SegvitError, match=message):
        load_table(_table(tmp_path, row))


def test_a_patch_14_row_takes_a_crop_of_512(tmp_path):
    row = "{name: a, variant: segvit, backbone: vit_base_patch14_dinov2, dataset: ade20k, "
    row += "crop: 512}"
    assert load_table(_table(tmp_path, row)).rows[0].crop == 512
