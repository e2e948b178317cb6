"""The learning-rate schedules of the suite's PyTorch baselines (tools/eval_harness.py's train_run): constant, or
gatecut's --lr-decay (a linear warm-up, then a linear decay), step for step the factors of gatecut's Schedule.at."""


def lr_factor(schedule, step, total, warmup=0.1):
    """The learning-rate factor of optimizer step `step` (0-based) of `total`: 1 for "constant"; for "linear" a
    linear warm-up over the first `warmup` of the steps, then a linear decay to 1/(steps left) at the last one
    (BERT's schedule, and gatecut's --lr-decay: the same figures as its Schedule.at)."""
    if schedule == "constant":
        return 1.0
    if schedule != "linear":
        raise ValueError(f"schedule must be constant or linear, got {schedule!r}")
    warm = warmup * total
    factor = 1.0 if warm <= 0 else min(1.0, (step + 1) / warm)
    return min(factor, (total - step) / max(1.0, total - warm))
