"""Per-channel normalisation of 0-255 images by a fixed mean and standard deviation."""

import keras
import numpy as np
from keras import ops


@keras.saving.register_keras_serializable(package="keras_danet")
class ImageNormalization(keras.layers.Layer):
    """`(images - mean) / std` per channel, with the mean and std written into the graph.

    `keras.layers.Normalization(mean=..., variance=...)` computes the same numbers, but it
    makes its mean and variance tensors once, outside any traced function: an exported
    TensorFlow graph then captures them as external tensors, which tf2onnx turns into two
    extra model inputs ONNX Runtime asks for. Here they are made inside `call`, so every
    exporter sees constants. No weights.

    Args:
        mean, std: three floats each, on the 0-255 scale.

    Example:
    >>> layer = ImageNormalization(mean=(123.675, 116.28, 103.53), std=(58.395, 57.12, 57.375))
    """

    def __init__(self, mean, std, **kwargs):
        super().__init__(**kwargs)
        self.mean = tuple(float(v) for v in mean)
        self.std = tuple(float(v) for v in std)

    def call(self, images):
        mean = ops.convert_to_tensor(np.array(self.mean, np.float32), self.compute_dtype)
        std = ops.convert_to_tensor(np.array(self.std, np.float32), self.compute_dtype)
        return (ops.cast(images, self.compute_dtype) - mean) / std  # divided, as mmseg

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "mean": self.mean, "std": self.std}
