"""Device peaks by CUDA name, and the FLOPs arithmetic of MFU."""

import pytest

from segvit.analysis.hardware import (
    cpu_label,
    peak_for,
    processor_name,
    seconds_per_image,
    training_tflops,
)


@pytest.mark.parametrize(
    ("name", "label", "tflops"),
    [
        ("NVIDIA H100 80GB HBM3", "H100 SXM", 989.0),
        ("NVIDIA H100 PCIe", "H100 PCIe", 756.0),
        ("NVIDIA H100 NVL", "H100 NVL", 835.0),
        ("NVIDIA H200", "H200 SXM", 989.0),
        ("NVIDIA GH200 480GB", "GH200", 989.0),
        ("NVIDIA A100-SXM4-80GB", "A100", 312.0),
        ("NVIDIA A100 80GB PCIe", "A100", 312.0),
        ("NVIDIA L40S", "L40S", 362.0),
        ("NVIDIA L4", "L4", 121.0),
        ("NVIDIA A10", "A10", 125.0),
    ],
)
def test_known_cards(name, label, tflops):
    peak = peak_for(name)
    assert peak is not None and (peak.label, peak.bf16_tflops) == (label, tflops)


@pytest.mark.parametrize("name", ["Tesla V100-SXM2-32GB", "NVIDIA L40", "cpu", ""])
def test_unknown_cards_have_no_peak(name):
    assert peak_for(name) is None


def test_flops_arithmetic():
    # 100 fvcore GFLOPs (multiply-adds) per image, 10 images/s: 2 x 3 x 1000 GFLOP/s = 6 TFLOP/s.
    assert training_tflops(100.0, 10.0) == pytest.approx(6.0)
    # At 50% of a 12 TFLOP/s peak, 6 TFLOP/s is reached: 0.1 s per image.
    assert seconds_per_image(100.0, 12.0, 0.5) == pytest.approx(0.1)


@pytest.mark.parametrize(
    ("raw", "name"),
    [
        ("Intel(R) Xeon(R) Processor", "Intel Xeon Processor"),
        ("Intel(R) Core(TM) i7-8700 CPU @ 3.20GHz", "Intel Core i7-8700 CPU @ 3.20GHz"),
        ("Intel(tm) Core(c) 2", "Intel Core 2"),
        ("Intel\u00ae Xeon\u00ae Gold\u2122", "Intel Xeon Gold"),
        ("ARMv7 Processor rev 4 (v7l)", "ARMv7 Processor rev 4 v7l"),
        ("  AMD   EPYC\t7B13 \n", "AMD EPYC 7B13"),
        ("AMD EPYC", "AMD EPYC"),  # the committed tables' machine: unchanged
        ("", "fallback"),
        ("(R) ()", "fallback"),
    ],
)
def test_processor_names_lose_marks_and_parentheses(raw, name):
    assert processor_name(raw, "fallback") == name


def test_a_cpu_label_counts_threads_in_words():
    assert cpu_label("AMD EPYC", 1) == "cpu (AMD EPYC, 1 thread)"
    assert cpu_label("Intel(R) Xeon(R) Processor", 2) == "cpu (Intel Xeon Processor, 2 threads)"
