"""TorchBatchNormalization against torch.nn.BatchNorm2d, the layer mmseg trains with."""

import keras
import numpy as np
import torch

from keras_danet.layers import TorchBatchNormalization
from tests.conftest import to_numpy
from tests.helpers import backend_gradients

CHANNELS = 5


def _pair():
    rng = np.random.default_rng(0)
    gamma, beta = rng.normal(size=CHANNELS), rng.normal(size=CHANNELS)
    ours = TorchBatchNormalization()
    ours.build((None, 6, 7, CHANNELS))
    ours.gamma.assign(gamma.astype("float32"))
    ours.beta.assign(beta.astype("float32"))
    theirs = torch.nn.BatchNorm2d(CHANNELS)
    with torch.no_grad():
        theirs.weight.copy_(torch.tensor(gamma))
        theirs.bias.copy_(torch.tensor(beta))
    return ours, theirs


def _batch(seed):
    return (np.random.default_rng(seed).normal(size=(2, 6, 7, CHANNELS)) * 3 + 1).astype("float32")


def _torch_nhwc(layer, x):
    return layer(torch.tensor(x).permute(0, 3, 1, 2)).permute(0, 2, 3, 1).detach().numpy()


def test_trains_and_infers_as_pytorch_batch_norm():
    ours, theirs = _pair()
    for seed in range(2):  # the running statistics move twice, by PyTorch's rule
        x = _batch(seed)
        np.testing.assert_allclose(
            to_numpy(ours(x, training=True)), _torch_nhwc(theirs, x), atol=2e-6
        )
    np.testing.assert_allclose(to_numpy(ours.moving_mean), theirs.running_mean.numpy(), atol=1e-6)
    np.testing.assert_allclose(
        to_numpy(ours.moving_variance), theirs.running_var.numpy(), rtol=1e-6
    )
    theirs.eval()
    x = _batch(2)
    np.testing.assert_allclose(to_numpy(ours(x, training=False)), _torch_nhwc(theirs, x), atol=2e-6)


def test_input_gradient_is_pytorchs():
    ours, theirs = _pair()
    x = _batch(3)
    weights = np.random.default_rng(4).normal(size=x.shape).astype("float32")
    [got] = backend_gradients(
        lambda inputs: keras.ops.sum(ours(inputs, training=True) * keras.ops.array(weights)), [x]
    )
    inputs = torch.tensor(x, requires_grad=True)
    (
        theirs(inputs.permute(0, 3, 1, 2)).permute(0, 2, 3, 1) * torch.tensor(weights)
    ).sum().backward()
    np.testing.assert_allclose(got, inputs.grad.numpy(), atol=1e-5)
