import keras
import numpy as np
import pytest

from keras_danet.layers import resize_bilinear
from tests.conftest import to_numpy
from tests.helpers import assert_gradients_close, backend_gradients, numerical_gradients


def numpy_resize(x, size, align_corners):
    """PyTorch's F.interpolate(mode="bilinear") rules, written out in NumPy (NHWC)."""

    def coordinates(in_size, out_size):
        index = np.arange(out_size, dtype=np.float64)
        if align_corners:
            return index * ((in_size - 1) / (out_size - 1) if out_size > 1 else 0.0)
        return np.maximum((index + 0.5) * in_size / out_size - 0.5, 0.0)

    def along(x, axis, out_size):
        position = coordinates(x.shape[axis], out_size)
        lower = np.floor(position).astype(int)
        upper = np.minimum(lower + 1, x.shape[axis] - 1)
        shape = [1] * x.ndim
        shape[axis] = out_size
        weight = (position - lower).reshape(shape)
        return np.take(x, lower, axis) * (1 - weight) + np.take(x, upper, axis) * weight

    return along(along(x.astype(np.float64), 1, size[0]), 2, size[1])


@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("size", [(65, 97), (17, 9), (1, 1), (8, 12)])
def test_matches_pytorch_rules(align_corners, size):
    x = np.random.default_rng(0).normal(size=(2, 9, 13, 3)).astype("float32")
    np.testing.assert_allclose(
        to_numpy(resize_bilinear(x, size, align_corners)),
        numpy_resize(x, size, align_corners),
        atol=1e-5,
    )


def test_align_corners_keeps_the_corners():
    x = np.random.default_rng(0).normal(size=(1, 9, 13, 2)).astype("float32")
    out = to_numpy(resize_bilinear(x, (65, 97), align_corners=True))
    for row, column in [(0, 0), (-1, -1), (0, -1), (-1, 0)]:
        np.testing.assert_allclose(out[0, row, column], x[0, row, column], atol=1e-6)


@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("size", [(17, 9), (4, 6)])
def test_gradients_match_float64_finite_differences(align_corners, size):
    rng = np.random.default_rng(5)
    x = rng.normal(size=(1, 5, 7, 2)).astype("float32")
    cotangent = rng.normal(size=(1, *size, 2)).astype("float32")

    def backend_loss(images):
        return keras.ops.sum(
            keras.ops.multiply(resize_bilinear(images, size, align_corners), cotangent)
        )

    def numpy_loss(images):
        return np.sum(numpy_resize(images, size, align_corners) * cotangent)

    assert_gradients_close(
        backend_gradients(backend_loss, [x]), numerical_gradients(numpy_loss, [x])
    )
