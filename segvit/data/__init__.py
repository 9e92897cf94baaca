"""Datasets: preparing the official archives, reading them, and the paper's transforms.

Data flows prepare (archives -> mmsegmentation layout) -> datasets (pairs of image and label,
label ids reduced to training ids) -> transforms (the paper's augmentation) -> model.
"""
