"""A warning when training diverges while the loss stays finite."""

import math
import warnings

import keras


class LossGrowthWarning(keras.callbacks.Callback):
    """Warns once when the training loss has grown `factor` times over its first value.

    A learning rate far too high need not give NaN: the model can collapse to predicting one
    class everywhere with a large but finite loss, and train on like that. `DANet.fit` adds
    this callback (NaN and infinite losses stop `fit` with an error instead).

    Example:
    >>> model.fit(train, callbacks=[LossGrowthWarning(factor=5)])
    """

    def __init__(self, factor=10.0):
        super().__init__()
        self.factor = float(factor)
        self._first = None
        self._warned = False

    def on_train_begin(self, logs=None):
        self._first, self._warned = None, False

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is None or self._warned:
            return
        loss = float(loss)
        if self._first is None:
            self._first = loss
        elif math.isfinite(loss) and 0 < self._first * self.factor < loss:
            self._warned = True
            optimizer = getattr(self.model, "optimizer", None)
            rate = ""
            if optimizer is not None:
                value = float(keras.ops.convert_to_numpy(optimizer.learning_rate))
                rate = f" (learning rate now {value:.3g})"
            warnings.warn(
                f"The training loss has grown from {self._first:.4g} to {loss:.4g} by batch "
                f"{batch}{rate}: training is diverging. Lower the learning rate "
                "(compile(learning_rate=...)).",
                RuntimeWarning,
                stacklevel=2,
            )
