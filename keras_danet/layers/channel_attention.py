"""The channel attention module (CAM) of DANet."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_danet")
class ChannelAttention(keras.layers.Layer):
    """Channel attention module (CAM) of DANet, as in mmsegmentation.

    With X the (channels, H*W) feature matrix:

        energy = X @ X^T                                   # (channels, channels)
        attention = softmax(rowmax(energy) - energy)       # over the last axis
        output = gamma * (attention @ X) + X               # gamma is a scalar, initialised to 0

    The sign is mmseg's (and the paper authors'): `rowmax - energy`, so the largest weights
    go to the least similar channels. The energy sums H*W products of post-ReLU activations,
    so it is computed in float32 whatever the dtype policy.

    Works on any spatial size, including unknown ones. Input and output are NHWC.

    Example:
    >>> layer = keras_danet.ChannelAttention()
    >>> layer(np.ones((2, 9, 13, 32), "float32")).shape
    (2, 9, 13, 32)
    """

    def build(self, input_shape):
        self.gamma = self.add_weight(shape=(), initializer="zeros", name="gamma")

    def attention_scores(self, inputs):
        """The (batch, channels, channels) attention matrix."""
        return self._attention(self._flatten(inputs))

    def _flatten(self, inputs):
        shape = ops.shape(inputs)
        return ops.reshape(ops.cast(inputs, "float32"), (shape[0], -1, shape[3]))

    def _attention(self, features):
        energy = ops.matmul(ops.transpose(features, (0, 2, 1)), features)
        energy = ops.max(energy, axis=-1, keepdims=True) - energy
        return ops.softmax(energy, axis=-1)

    def call(self, inputs):
        features = self._flatten(inputs)
        attention = self._attention(features)
        # (attention @ X) in channel-major form is X @ attention^T in NHWC.
        context = ops.matmul(features, ops.transpose(attention, (0, 2, 1)))
        outputs = ops.cast(self.gamma, "float32") * context + features
        return ops.cast(ops.reshape(outputs, ops.shape(inputs)), self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)
