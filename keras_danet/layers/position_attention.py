"""The position attention module (PAM) of DANet."""

import keras
from keras import ops

from keras_danet import config
from keras_danet.layers.conv2d import Conv2D
from keras_danet.layers.torch_initializers import torch_conv_initializers

IMPLEMENTATIONS = ("auto",) + config.ATTENTION_IMPLEMENTATIONS


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

    The N x N attention matrix (N = H*W) takes 4.3 GB at N = 32768, a whole Cityscapes
    frame. `implementation` chooses how it is computed; all give the same numbers:
    - "chunked" (what "auto" means by default, see `keras_danet.config`): the queries in
      blocks of `query_chunk_size`, each block's softmax over all keys, so memory grows
      as `query_chunk_size x N`; it was as fast as "naive" or faster on every backend;
    - "naive": the whole matrix at once, as mmseg;
    - "fused": `keras.ops.dot_product_attention` (PyTorch's scaled-dot-product kernels,
      cuDNN flash attention on a GPU), the value split into heads as wide as the key,
      each head sharing query and key, with scale 1.

    Works on any spatial size, including unknown ones. Input and output are NHWC.

    An exported graph (`model.export`, `keras_danet.config.tracing_for_export`) computes
    "chunked" as "naive": a loop over blocks is a TensorList loop that LiteRT and OpenVINO
    cannot convert. Its attention matrix then takes 4 x N^2 bytes per image: 4.3 GB at
    1024x2048 (N = 128 x 256 positions at output stride 8), 270 MB at 512x1024.

    Args:
        key_channels: channels of the query and key projections (mmseg's `pam_channels`).
        implementation: "auto", "chunked", "naive" or "fused".
        query_chunk_size: queries per block of the "chunked" implementation.

    Example:
    >>> layer = keras_danet.PositionAttention(key_channels=8)
    >>> layer(np.ones((2, 9, 13, 32), "float32")).shape
    (2, 9, 13, 32)
    """

    def __init__(self, key_channels, implementation="auto", query_chunk_size=1024, **kwargs):
        super().__init__(**kwargs)
        if int(key_channels) < 1:
            raise ValueError(f"key_channels must be a positive integer, got {key_channels!r}.")
        if implementation not in IMPLEMENTATIONS:
            raise ValueError(
                f"implementation must be one of {IMPLEMENTATIONS}, got {implementation!r}."
            )
        if int(query_chunk_size) < 1:
            raise ValueError(f"query_chunk_size must be positive, got {query_chunk_size!r}.")
        self.key_channels = int(key_channels)
        self.implementation = implementation
        self.query_chunk_size = int(query_chunk_size)
        # Query and key are separate projections (not shared), as in mmseg's PAM.
        self.query_project = self._projection(self.key_channels, "query_project")
        self.key_project = self._projection(self.key_channels, "key_project")
        self.value_project = None  # its width is the input's, known in build()

    def _projection(self, channels, name):
        return Conv2D(channels, 1, use_bias=True, dtype=self.dtype_policy, name=name)

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels is None:
            raise ValueError("PositionAttention needs a known channel dimension.")
        self.value_project = self._projection(channels, "value_project")
        for projection in (self.query_project, self.key_project, self.value_project):
            # mmseg's PAM projections are plain nn.Conv2d: PyTorch's default init, whose
            # bias bound depends on the input width, known only now.
            kernel_init, bias_init = torch_conv_initializers(fan_in=channels)
            projection.kernel_initializer, projection.bias_initializer = kernel_init, bias_init
            projection.build(input_shape)
        self.gamma = self.add_weight(shape=(), initializer="zeros", name="gamma")

    def _flat(self, projection, inputs, channels):
        return ops.reshape(
            ops.cast(projection(inputs), "float32"), (ops.shape(inputs)[0], -1, channels)
        )

    def attention_scores(self, inputs):
        """The (batch, H*W, H*W) attention matrix; rows are queries in row-major order."""
        query = self._flat(self.query_project, inputs, self.key_channels)
        key = self._flat(self.key_project, inputs, self.key_channels)
        return ops.softmax(ops.matmul(query, ops.transpose(key, (0, 2, 1))), axis=-1)

    def attention_for(self, inputs, positions):
        """Attention rows of some query `positions` (flat indices): (batch, len, H*W).

        What the attention-map pictures need, without the whole N x N matrix.
        """
        query = self._flat(self.query_project, inputs, self.key_channels)
        query = ops.take(query, ops.convert_to_tensor(positions, "int32"), axis=1)
        key = self._flat(self.key_project, inputs, self.key_channels)
        return ops.softmax(ops.matmul(query, ops.transpose(key, (0, 2, 1))), axis=-1)

    def resolved_implementation(self):
        implementation = self.implementation
        if implementation == "auto":
            implementation = config.attention_implementation()
        if implementation == "chunked" and config.is_tracing_for_export():
            return "naive"  # no loop in an exported graph (config.tracing_for_export)
        return implementation

    def call(self, inputs):
        shape = ops.shape(inputs)
        query = self._flat(self.query_project, inputs, self.key_channels)
        key = self._flat(self.key_project, inputs, self.key_channels)
        value = self._flat(self.value_project, inputs, shape[3])
        implementation = self.resolved_implementation()
        if implementation == "fused":
            context = self._fused(query, key, value)
        elif implementation == "chunked":
            context = self._chunked(query, key, value)
        else:
            context = self._naive(query, key, value)
        context = ops.reshape(context, shape)
        outputs = ops.cast(self.gamma, "float32") * context + ops.cast(inputs, "float32")
        return ops.cast(outputs, self.compute_dtype)

    @staticmethod
    def _naive(query, key, value):
        attention = ops.softmax(ops.matmul(query, ops.transpose(key, (0, 2, 1))), axis=-1)
        return ops.matmul(attention, value)

    def _chunked(self, query, key, value):
        positions = query.shape[1]
        chunk = self.query_chunk_size
        # A symbolic size (JAX export) cannot be compared: only a known one picks "naive".
        if isinstance(positions, int) and positions <= chunk:
            return self._naive(query, key, value)
        batch, count = ops.shape(query)[0], ops.shape(query)[1]
        # Pad the queries to whole blocks; a padded query's output is dropped at the end,
        # and queries do not affect each other.
        padding = (chunk - count % chunk) % chunk
        blocks = ops.pad(query, ((0, 0), (0, padding), (0, 0)))
        blocks = ops.transpose(
            ops.reshape(blocks, (batch, -1, chunk, self.key_channels)), (1, 0, 2, 3)
        )
        keys = ops.transpose(key, (0, 2, 1))

        def block(block_queries):
            return ops.matmul(ops.softmax(ops.matmul(block_queries, keys), axis=-1), value)

        context = ops.map(block, blocks)  # (blocks, batch, chunk, channels)
        context = ops.reshape(
            ops.transpose(context, (1, 0, 2, 3)), (batch, -1, ops.shape(value)[2])
        )
        return context[:, :count]

    def _fused(self, query, key, value):
        # ops.dot_product_attention needs value heads as wide as the key: split the value
        # into heads; every head shares the query and key, so each gets the same weights.
        channels = value.shape[2]
        if channels % self.key_channels:
            raise ValueError(
                f"The fused implementation needs channels ({channels}) divisible by "
                f"key_channels ({self.key_channels})."
            )
        heads = channels // self.key_channels
        batch, count = ops.shape(query)[0], ops.shape(query)[1]
        query = ops.repeat(ops.expand_dims(query, 2), heads, axis=2)
        key = ops.repeat(ops.expand_dims(key, 2), heads, axis=2)
        value = ops.reshape(value, (batch, count, heads, self.key_channels))
        context = ops.dot_product_attention(query, key, value, scale=1.0)
        return ops.reshape(context, (batch, count, channels))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config_ = super().get_config()
        config_.update(
            key_channels=self.key_channels,
            implementation=self.implementation,
            query_chunk_size=self.query_chunk_size,
        )
        return config_
