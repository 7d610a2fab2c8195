"""The position attention module (PAM) of DANet."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_danet")
class PositionAttention(keras.layers.Layer):
    """Position attention module (PAM) of DANet, as in mmsegmentation.

    Every position attends to every other position of the feature map:

        q, k = query_project(x), key_project(x)   # 1x1 convs with bias, to key_channels
        v = value_project(x)                      # 1x1 conv with bias, keeps the channels
        attention = softmax_over_keys(q @ k^T)    # no 1/sqrt(d) scaling
        output = gamma * (attention @ v) + x      # gamma is a scalar, initialised to 0

    The energy, softmax and weighted sum run in float32 whatever the dtype policy:
    the (H*W)^2 energies of post-ReLU features overflow float16.

    Works on any spatial size, including unknown ones. Input and output are NHWC.

    Args:
        key_channels: channels of the query and key projections (mmseg's `pam_channels`).

    Example:
    >>> layer = keras_danet.PositionAttention(key_channels=8)
    >>> layer(np.ones((2, 9, 13, 32), "float32")).shape
    (2, 9, 13, 32)
    """

    def __init__(self, key_channels, **kwargs):
        super().__init__(**kwargs)
        if int(key_channels) < 1:
            raise ValueError(f"key_channels must be a positive integer, got {key_channels!r}.")
        self.key_channels = int(key_channels)
        # Query and key are separate projections (not shared), as in mmseg's PAM.
        self.query_project = self._projection(self.key_channels, "query_project")
        self.key_project = self._projection(self.key_channels, "key_project")
        self.value_project = None  # its width is the input's, known in build()

    def _projection(self, channels, name):
        return keras.layers.Conv2D(channels, 1, use_bias=True, dtype=self.dtype_policy, name=name)

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels is None:
            raise ValueError("PositionAttention needs a known channel dimension.")
        self.value_project = self._projection(channels, "value_project")
        for projection in (self.query_project, self.key_project, self.value_project):
            projection.build(input_shape)
        self.gamma = self.add_weight(shape=(), initializer="zeros", name="gamma")

    def attention_scores(self, inputs):
        """The (batch, H*W, H*W) attention matrix; rows are queries in row-major order."""
        batch = ops.shape(inputs)[0]
        query = ops.reshape(
            ops.cast(self.query_project(inputs), "float32"), (batch, -1, self.key_channels)
        )
        key = ops.reshape(
            ops.cast(self.key_project(inputs), "float32"), (batch, -1, self.key_channels)
        )
        energy = ops.matmul(query, ops.transpose(key, (0, 2, 1)))
        return ops.softmax(energy, axis=-1)

    def call(self, inputs):
        # ops.dot_product_attention is not used: its JAX path requires the value to have the
        # query's width (64 here, against 512 for the value) and logs a traceback on fallback.
        attention = self.attention_scores(inputs)
        shape = ops.shape(inputs)
        value = ops.reshape(
            ops.cast(self.value_project(inputs), "float32"), (shape[0], -1, shape[3])
        )
        context = ops.reshape(ops.matmul(attention, value), shape)
        outputs = ops.cast(self.gamma, "float32") * context + ops.cast(inputs, "float32")
        return ops.cast(outputs, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(key_channels=self.key_channels)
        return config
