"""Bilinear resizing with PyTorch's two corner conventions."""

import keras
from keras import ops


def resize_bilinear(images, size, align_corners=False):
    """Resizes NHWC `images` to `size` = (height, width) like `F.interpolate(mode="bilinear")`.

    `align_corners=False` is half-pixel sampling, which `keras.ops.image.resize` does (without
    antialiasing). Keras has no `align_corners=True` mode, which mmseg's 769x769 configs use,
    so that one is written here: output pixel i samples input position i * (in - 1) / (out - 1).
    """
    if not align_corners:
        return ops.image.resize(images, size, interpolation="bilinear", antialias=False)
    images = _resize_axis_align_corners(images, size[0], axis=1)
    return _resize_axis_align_corners(images, size[1], axis=2)


def _resize_axis_align_corners(images, out_size, axis):
    in_size = ops.shape(images)[axis]
    scale = ops.cast(in_size - 1, "float32") / ops.cast(ops.maximum(out_size - 1, 1), "float32")
    position = ops.cast(ops.arange(out_size), "float32") * scale
    lower = ops.floor(position)
    weight = ops.cast(position - lower, images.dtype)
    lower = ops.cast(lower, "int32")
    upper = ops.minimum(lower + 1, in_size - 1)
    weight = ops.reshape(weight, (-1, 1, 1) if axis == 1 else (-1, 1))
    below = ops.take(images, lower, axis=axis)
    above = ops.take(images, upper, axis=axis)
    return below * (1 - weight) + above * weight


@keras.saving.register_keras_serializable(package="keras_danet")
class BilinearResize(keras.layers.Layer):
    """Resizes `images` to the spatial size of `reference`: `layer([images, reference])`.

    Args:
        align_corners: PyTorch's `align_corners` (mmseg's 769x769 configs use True).
    """

    def __init__(self, align_corners=False, **kwargs):
        super().__init__(**kwargs)
        self.align_corners = bool(align_corners)

    def call(self, inputs):
        images, reference = inputs
        size = ops.shape(reference)[1:3]
        return resize_bilinear(images, size, self.align_corners)

    def compute_output_shape(self, input_shape):
        images, reference = input_shape
        return (images[0], reference[1], reference[2], images[3])

    def get_config(self):
        config = super().get_config()
        config.update(align_corners=self.align_corners)
        return config
