from keras_danet.layers.batch_normalization import TorchBatchNormalization
from keras_danet.layers.bilinear_resize import BilinearResize, resize_bilinear
from keras_danet.layers.channel_attention import ChannelAttention
from keras_danet.layers.conv2d import Conv2D
from keras_danet.layers.image_normalization import ImageNormalization
from keras_danet.layers.position_attention import PositionAttention

__all__ = [
    "BilinearResize",
    "ChannelAttention",
    "Conv2D",
    "ImageNormalization",
    "PositionAttention",
    "TorchBatchNormalization",
    "resize_bilinear",
]
