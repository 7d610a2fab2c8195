"""SGD exactly as `torch.optim.SGD` computes it, the optimizer of every mmseg DANet config."""

import keras
from keras import ops

from keras_danet.training.schedule import PolyDecay


@keras.saving.register_keras_serializable(package="keras_danet")
class TorchSGD(keras.optimizers.Optimizer):
    """Stochastic gradient descent with momentum and weight decay as PyTorch applies them.

    For each variable `w` with gradient `g`, at learning rate `lr`:

        g = g + weight_decay * w            # L2 weight decay, added before the momentum
        buffer = momentum * buffer + g
        w = w - lr * buffer                 # (nesterov: w - lr * (g + momentum * buffer))

    Two differences from `keras.optimizers.SGD(momentum=0.9, weight_decay=5e-4)`:
    - Keras' `weight_decay` is decoupled (`w -= lr * wd * w` beside the step); PyTorch's
      goes through the momentum buffer, which multiplies its effect by 1 / (1 - momentum),
      10x at momentum 0.9;
    - Keras keeps `lr * g` in its momentum buffer, so a changing learning rate (the poly
      schedule) weighs past gradients with past rates; PyTorch applies today's rate to the
      whole buffer.

    Weight decay applies to every variable, BatchNorm and the attention gammas included, as
    in mmseg's DANet configs; `exclude_from_weight_decay(...)` (Keras' API) opts some out.

    Args:
        learning_rate: a float or a schedule (`keras_danet.training.PolyDecay`).
        momentum: PyTorch's momentum (0.9).
        weight_decay: the L2 coefficient (mmseg: 5e-4).
        nesterov: Nesterov momentum, as PyTorch's `nesterov=True`.

    Example:
    >>> optimizer = keras_danet.training.TorchSGD(
    ...     keras_danet.training.PolyDecay(0.01, decay_steps=40_000), weight_decay=5e-4)
    """

    def __init__(
        self,
        learning_rate=0.01,
        momentum=0.9,
        weight_decay=5e-4,
        nesterov=False,
        name="torch_sgd",
        **kwargs,
    ):
        # Keras' own (decoupled) weight decay stays off: this one is applied in update_step.
        kwargs.pop("weight_decay", None)
        super().__init__(learning_rate=learning_rate, name=name, weight_decay=None, **kwargs)
        if momentum < 0 or weight_decay < 0:
            raise ValueError(
                f"momentum and weight_decay must be >= 0; got {momentum} and {weight_decay}."
            )
        self.momentum = float(momentum)
        self.l2_weight_decay = float(weight_decay)
        self.nesterov = bool(nesterov)

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        self.momentums = []
        if self.momentum:
            self.momentums = self.add_optimizer_variables(variables, "momentum")
        self.poly_horizon = None
        schedule = self._learning_rate
        if isinstance(schedule, PolyDecay):
            # The poly schedule's horizon as state rather than a constant of the compiled
            # step: a new horizon (each fit() sets one) needs no new compilation.
            self.poly_horizon = self.add_variable(
                (),
                initializer=keras.initializers.Constant(float(schedule.decay_steps or 1)),
                dtype="float32",
                name="poly_horizon",
            )

    def load_own_variables(self, store):
        horizon = getattr(self, "poly_horizon", None)
        variables = self.variables
        if (
            horizon is not None
            and variables[-1] is horizon
            and len(store.keys()) == len(variables) - 1
        ):
            # Saved before the horizon became a variable (keras_danet 0.1 presets): the
            # rest is the same state in the same order; fit() sets the horizon anyway.
            for index, variable in enumerate(variables[:-1]):
                variable.assign(store[str(index)])
            return
        super().load_own_variables(store)

    def _get_current_learning_rate(self):
        horizon = getattr(self, "poly_horizon", None)
        if horizon is None:
            return super()._get_current_learning_rate()
        self._learning_rate.checked_horizon()  # a clear error while fit has not set it
        return self._learning_rate.rate(self._iterations, horizon)

    def update_step(self, gradient, variable, learning_rate):
        learning_rate = ops.cast(learning_rate, variable.dtype)
        gradient = ops.cast(gradient, variable.dtype)
        if self.l2_weight_decay and self._use_weight_decay(variable):
            gradient = gradient + ops.cast(self.l2_weight_decay, variable.dtype) * variable
        step = gradient
        if self.momentum:
            buffer = self.momentums[self._get_variable_index(variable)]
            momentum = ops.cast(self.momentum, variable.dtype)
            buffer_value = buffer * momentum + gradient
            self.assign(buffer, buffer_value)
            step = gradient + momentum * buffer_value if self.nesterov else buffer_value
        self.assign_sub(variable, learning_rate * step)

    def get_config(self):
        config = super().get_config()
        config.update(
            momentum=self.momentum, weight_decay=self.l2_weight_decay, nesterov=self.nesterov
        )
        return config
