"""Benchmarks, one module per concern: the data pipeline (`data`), a training step and the
records `segvit bench train --save` writes (`train_step`) and prediction on one large photo
(`predict`). What composes an Experiment to time it (`segvit bench train`) is
segvit.experiments.bench_train, as the QU evidence composes segvit.analysis.qu_probe."""
