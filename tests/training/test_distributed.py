"""Training on several devices: JAX's `keras.distribution.DataParallel` on two virtual CPU
devices in a child process must give the single-device step on the same global batch, which
for BatchNorm means statistics over the global batch, as mmseg's SyncBN.

TensorFlow's MirroredStrategy with synchronized BatchNorm is not run here: on two virtual
CPUs it failed with a collective-ordering error ("Shape mismatch in the collective
instance 100") for Keras' own layers, loss and SGD too, in TF 2.21 (see the README).
"""

import json
import os

import keras
import pytest

from tests.presets.conftest import run_python

COMMON = """
import json
import keras, numpy as np
import keras_danet
from tests.conftest import TINY

rng = np.random.default_rng(0)
images = rng.uniform(0, 255, size=(4, 32, 40, 3)).astype("float32")
labels = rng.integers(0, 4, size=(4, 32, 40)).astype("uint8")
labels[:, :, :4] = 255


def danet(**kwargs):
    keras.utils.set_random_seed(0)
    return keras_danet.DANet(num_classes=4, dropout=0.0, **TINY, **kwargs)


single = danet()
start = single.get_weights()
single.compile(max_iterations=10)
expected = single.train_on_batch(images, labels, return_dict=True)
expected_weights = single.get_weights()


def relative_weight_difference(model):
    return max(
        float(np.abs(a - b).max() / (np.abs(b).max() + 1e-12))
        for a, b in zip(model.get_weights(), expected_weights)
    )
"""

JAX_DATA_PARALLEL = """
import jax
devices = jax.devices()
assert len(devices) == 2, devices
keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
model = danet()
model.set_weights(start)
model.compile(max_iterations=10)
got = model.train_on_batch(images, labels, return_dict=True)
weights = relative_weight_difference(model)
replicas_equal = all(
    len(v.value.addressable_shards) == 2
    and np.array_equal(v.value.addressable_shards[0].data, v.value.addressable_shards[1].data)
    for v in model.weights
)
history = model.fit(images, labels, batch_size=4, epochs=1, verbose=0)
print(json.dumps({
    "single": expected["loss"], "parallel": got["loss"],
    "weights": weights,
    "replicas_equal": replicas_equal, "fit_loss": history.history["loss"][0],
}))
"""


def _run(script, prelude="", **environment):
    result = run_python(prelude + COMMON + script, **environment)
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(keras.backend.backend() != "jax", reason="keras.distribution is JAX's")
def test_jax_data_parallel_equals_one_device_on_the_global_batch():
    flags = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count=2"
    got = _run(JAX_DATA_PARALLEL, XLA_FLAGS=flags.strip())
    assert got["replicas_equal"]
    # BatchNorm sees the global batch: the sharded step is the single-device step.
    assert got["parallel"] == pytest.approx(got["single"], rel=1e-5)
    assert got["weights"] < 1e-3
    assert got["fit_loss"] == got["fit_loss"]  # fit() ran and gave a number


def test_synchronized_batch_norm_option_reaches_every_batch_norm():
    from keras_danet import DANet
    from keras_danet.layers import TorchBatchNormalization
    from tests.conftest import TINY

    model = DANet(num_classes=4, synchronized_batch_norm=True, **TINY)
    layers = [
        layer
        for part in (model, model.backbone, model.training_heads)
        for layer in part.layers
        if isinstance(layer, TorchBatchNormalization)
    ]
    assert len(layers) == 60
    for layer in layers:
        # Keras' own flag on TensorFlow (tf.distribute); JAX's DataParallel needs none.
        assert layer.synchronized == (keras.backend.backend() == "tensorflow")
        assert layer.get_config()["synchronized"] is True
    assert DANet.from_config(model.get_config()).synchronized_batch_norm
