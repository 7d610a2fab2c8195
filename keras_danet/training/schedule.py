"""mmseg's poly learning-rate schedule, with a horizon that `fit` can fill in."""

import keras
from keras import ops

from keras_danet.training import keras_internals


@keras.saving.register_keras_serializable(package="keras_danet")
class PolyDecay(keras.optimizers.schedules.PolynomialDecay):
    """mmseg's `PolyLR`: `(lr0 - end) * (1 - step / decay_steps) ** power + end`, per iteration.

    `keras.optimizers.schedules.PolynomialDecay` with mmseg's DANet defaults (power 0.9, down
    to 1e-4), and one addition: `decay_steps` may be left `None`, for `DANet.fit` to set
    from `epochs x steps_per_epoch` when training starts. A schedule whose horizon is still
    unknown when a step runs (`train_on_batch` without `compile(max_iterations=...)`)
    raises an error rather than guess one.

    mmseg 1.x's `PolyLR(end=max_iters)` (mmengine) reaches the end rate at the last
    iteration, so its `decay_steps` is `max_iters - 1`; `horizon_for(max_iters)` gives it.
    (mmseg 0.x, which trained the released checkpoints, divided by `max_iters`; over 40k
    iterations the two schedules differ by less than 1e-6 in the learning rate, except in
    the very last steps.)

    Example:
    >>> schedule = keras_danet.training.PolyDecay(0.01, decay_steps=40_000)
    >>> float(schedule(20_000))  # (0.01 - 1e-4) * 0.5 ** 0.9 + 1e-4
    0.005405...
    """

    def __init__(
        self,
        initial_learning_rate=0.01,
        decay_steps=None,
        end_learning_rate=1e-4,
        power=0.9,
        name="PolyDecay",
    ):
        super().__init__(
            initial_learning_rate,
            decay_steps=1 if decay_steps is None else decay_steps,
            end_learning_rate=end_learning_rate,
            power=power,
            name=name,
        )
        self.decay_steps = None if decay_steps is None else int(decay_steps)

    def __call__(self, step):
        return self.rate(step, float(self.checked_horizon()))

    def checked_horizon(self):
        """`decay_steps`, or a clear error if `fit` has not set it yet."""
        if self.decay_steps is None:
            raise RuntimeError(
                "The poly learning-rate schedule does not know its horizon yet. fit() sets "
                "it from epochs x steps per epoch; for train_on_batch, or data of unknown "
                "length, give it: model.compile(max_iterations=N)."
            )
        return self.decay_steps

    def rate(self, step, horizon):
        """The rate at `step` for a horizon given as a number or a tensor.

        `TorchSGD` passes its `poly_horizon` variable, so that a compiled step reads the
        horizon at run time: one compiled step (and one entry of JAX's compilation cache)
        serves every horizon.
        """
        # Keras' PolynomialDecay computes (1 - step / decay_steps) ** power; XLA may turn
        # the division into a multiplication by a rounded reciprocal, so at the last step
        # (step == decay_steps) the base can come out as -1.2e-7 and the rate as NaN, which
        # then poisons every weight (seen on JAX). The base is clamped at 0 here.
        dtype = "float32"
        horizon = ops.cast(horizon, dtype)
        step = ops.minimum(ops.cast(step, dtype), horizon)
        remaining = ops.maximum(1.0 - step / horizon, 0.0)
        initial = ops.cast(self.initial_learning_rate, dtype)
        end = ops.cast(self.end_learning_rate, dtype)
        return (initial - end) * ops.power(remaining, self.power) + end

    def get_config(self):
        config = super().get_config()
        config.pop("cycle")
        return config


def horizon_for(iterations):
    """`decay_steps` of mmseg 1.x's PolyLR over `iterations` steps (the last at the end rate)."""
    return max(int(iterations) - 1, 1)


def _inner(optimizer):
    while optimizer is not None and hasattr(optimizer, "inner_optimizer"):
        optimizer = optimizer.inner_optimizer
    return optimizer


def poly_schedule_of(optimizer):
    """The `PolyDecay` driving `optimizer` (loss-scale wrappers looked through), or None."""
    schedule = keras_internals.learning_rate_of(_inner(optimizer))
    return schedule if isinstance(schedule, PolyDecay) else None


def sync_poly_horizon(optimizer):
    """Copies the schedule's `decay_steps` into the optimizer's `poly_horizon` variable."""
    schedule, inner = poly_schedule_of(optimizer), _inner(optimizer)
    horizon = getattr(inner, "poly_horizon", None)
    if schedule is not None and horizon is not None and schedule.decay_steps is not None:
        horizon.assign(float(schedule.decay_steps))


class SetPolyHorizon(keras.callbacks.Callback):
    """Gives an open-ended `PolyDecay` its horizon, `epochs x steps`, when `fit` starts.

    `DANet.fit` adds it; it runs before the first step is traced, so compiled steps see the
    horizon. A horizon already set (by `compile(max_iterations=...)` or an earlier `fit`) is
    kept: the schedule of one `compile()` spans one run. The horizon is copied into the
    optimizer's `poly_horizon` variable at the start of training and of every epoch, after
    a `BackupAndRestore` has restored the optimizer: `decay_steps` is what counts.
    """

    def on_epoch_begin(self, epoch, logs=None):
        sync_poly_horizon(self.model.optimizer)

    def on_train_begin(self, logs=None):
        if self.params.get("steps") == 0:  # Keras would fail later, on an unbound variable
            raise ValueError("fit() got no training batches: the training data is empty.")
        schedule = poly_schedule_of(self.model.optimizer)
        if schedule is None or schedule.decay_steps is not None:
            return
        steps, epochs = self.params.get("steps"), self.params.get("epochs")
        if not steps:
            raise ValueError(
                "fit() cannot tell how many steps an epoch has (a dataset of unknown "
                "length), so the poly schedule has no horizon. Pass steps_per_epoch to "
                "fit(), or model.compile(max_iterations=N)."
            )
        schedule.decay_steps = horizon_for(int(epochs) * int(steps))
        sync_poly_horizon(self.model.optimizer)
