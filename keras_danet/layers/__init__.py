from keras_danet.layers.bilinear_resize import BilinearResize, resize_bilinear
from keras_danet.layers.channel_attention import ChannelAttention
from keras_danet.layers.position_attention import PositionAttention

__all__ = ["BilinearResize", "ChannelAttention", "PositionAttention", "resize_bilinear"]
