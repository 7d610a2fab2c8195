from keras_danet.layers.batch_normalization import TorchBatchNormalization
from keras_danet.layers.bilinear_resize import BilinearResize, resize_bilinear
from keras_danet.layers.channel_attention import ChannelAttention
from keras_danet.layers.position_attention import PositionAttention

__all__ = [
    "BilinearResize",
    "ChannelAttention",
    "PositionAttention",
    "TorchBatchNormalization",
    "resize_bilinear",
]
