"""Benchmarks, one module per concern: the data pipeline (`data`), a training step and its
saved records (`train_step`), a whole `segvit bench train` run (`train`) and prediction on one
large photo (`predict`)."""
