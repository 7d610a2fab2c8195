"""BatchNormalization with PyTorch's hyper-parameters and running-variance rule."""

import keras
from keras import ops

# PyTorch's BatchNorm: eps 1e-5 and running = 0.9 * running + 0.1 * batch.
EPSILON = 1e-5
MOMENTUM = 0.9


@keras.saving.register_keras_serializable(package="keras_danet")
class TorchBatchNormalization(keras.layers.BatchNormalization):
    """`keras.layers.BatchNormalization` that trains exactly like PyTorch's `BatchNorm2d`.

    Three differences from Keras' defaults, all needed to reproduce mmseg's training step:
    - epsilon 1e-5 and momentum 0.9 (PyTorch's `momentum=0.1`);
    - the moving variance is updated with the *unbiased* batch variance (n / (n - 1)
      times the biased one), as PyTorch does; Keras uses the biased one. The batch itself
      is still normalised with the biased variance, as in both libraries.

    At inference it is Keras' layer unchanged, so weights convert one to one.

    `synchronized=True` asks for statistics over the global batch, as mmseg's SyncBN, on
    every backend: on TensorFlow it is Keras' `synchronized` (distribution strategies);
    on JAX, `keras.distribution.DataParallel` computes every BatchNormalization over the
    global batch anyway, so the flag changes nothing there; Keras has no multi-device
    training on PyTorch, so there is nothing to synchronise. (Keras itself refuses
    `synchronized=True` outside TensorFlow.)

    Example:
    >>> layer = keras_danet.layers.TorchBatchNormalization(name="bn1")
    """

    def __init__(self, epsilon=EPSILON, momentum=MOMENTUM, synchronized=False, **kwargs):
        tensorflow = keras.backend.backend() == "tensorflow"
        super().__init__(
            epsilon=epsilon,
            momentum=momentum,
            synchronized=bool(synchronized) and tensorflow,
            **kwargs,
        )
        self.synchronized_requested = bool(synchronized)

    def get_config(self):
        return {**super().get_config(), "synchronized": self.synchronized_requested}

    def call(self, inputs, training=None, mask=None):
        if not (training and self.trainable) or mask is not None or self.renorm:
            return super().call(inputs, training=training, mask=mask)
        # BatchNormalization computes in float32 at least, whatever the policy.
        inputs = ops.cast(inputs, keras.backend.result_type(inputs.dtype, "float32"))
        mean, variance = self._moments(inputs, None)
        shape = ops.shape(inputs)
        count = 1
        for axis in self._reduction_axes:
            count = count * shape[axis]
        count = ops.cast(count, inputs.dtype)
        unbiased = variance * count / ops.maximum(count - 1.0, 1.0)
        self.moving_mean.assign(
            ops.cast(self.moving_mean, inputs.dtype) * self.momentum + mean * (1.0 - self.momentum)
        )
        self.moving_variance.assign(
            ops.cast(self.moving_variance, inputs.dtype) * self.momentum
            + unbiased * (1.0 - self.momentum)
        )
        outputs = ops.batch_normalization(
            inputs,
            mean=mean,
            variance=variance,
            axis=self.axis,
            offset=ops.cast(self.beta, inputs.dtype) if self.center else None,
            scale=ops.cast(self.gamma, inputs.dtype) if self.scale else None,
            epsilon=self.epsilon,
        )
        return ops.cast(outputs, self.compute_dtype)
