"""Training engine: optimiser and schedule, resumable data order, DDP, atomic checkpoints, loop.

`train.train(cfg, model=..., train_set=..., loss_fn=...)` is the entry point; a run killed at
any moment and resumed with `resume=True` ends with the same weights as an uninterrupted one.
"""
