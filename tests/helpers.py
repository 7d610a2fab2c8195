"""Helpers shared by the tests: backend-neutral gradients and float64 finite differences."""

import contextlib
import subprocess

import keras
import numpy as np
import pytest


def backend_gradients(function, arrays):
    """Gradients of the scalar `function(*tensors)` with respect to each array, as NumPy.

    Uses the backend's own automatic differentiation: `jax.grad`, `tf.GradientTape`, or
    PyTorch's autograd.
    """
    arrays = [np.asarray(array, "float32") for array in arrays]
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        grads = jax.grad(lambda *xs: function(*xs), argnums=tuple(range(len(arrays))))(*arrays)
    elif backend == "tensorflow":
        import tensorflow as tf

        variables = [tf.Variable(array) for array in arrays]
        with tf.GradientTape() as tape:
            value = function(*variables)
        grads = tape.gradient(value, variables)
    elif backend == "torch":
        import torch

        tensors = [torch.tensor(array, requires_grad=True) for array in arrays]
        function(*tensors).backward()
        grads = [tensor.grad for tensor in tensors]
    else:
        raise NotImplementedError(backend)
    return [np.asarray(keras.ops.convert_to_numpy(grad)) for grad in grads]


def numerical_gradients(function, arrays, step=1e-6):
    """Central finite differences of the scalar float64 NumPy `function(*arrays)`."""
    arrays = [np.array(array, np.float64) for array in arrays]
    grads = []
    for array in arrays:
        grad = np.zeros_like(array)
        for index in np.ndindex(array.shape):
            original = array[index]
            array[index] = original + step
            above = function(*arrays)
            array[index] = original - step
            below = function(*arrays)
            array[index] = original
            grad[index] = (above - below) / (2 * step)
        grads.append(grad)
    return grads


def assert_gradients_close(actual, expected, rtol=2e-3):
    """Each gradient within `rtol` of the reference, relative to its largest entry.

    A gradient that is zero in exact arithmetic (a key bias under a softmax over keys) is
    float32 round-off on the backend, so each bound is at least `rtol` x 1e-3 of the largest
    gradient of all.
    """
    assert len(actual) == len(expected)
    overall = max(np.abs(want).max() for want in expected)
    for got, want in zip(actual, expected, strict=True):
        assert got.shape == want.shape
        scale = max(np.abs(want).max(), 1e-3 * overall)
        np.testing.assert_allclose(got, want, rtol=0, atol=rtol * scale)


# compile() arguments for tests about what a training step computes rather than how it is
# compiled: TensorFlow spends 15 s tracing a tiny DANet's train step, and runs it eagerly in
# about 1 s; JAX's jit (with the persistent cache of conftest.py) and PyTorch stay as they are.
QUICK = {"run_eagerly": True} if keras.backend.backend() == "tensorflow" else {}


class StopAtTrainBegin(keras.callbacks.Callback):
    """Ends `fit` right after every callback's `on_train_begin`, before any step is compiled.

    `fit(..., callbacks=[StopAtTrainBegin()])` raises `StopAtTrainBegin.Stopped`.
    """

    class Stopped(Exception):
        pass

    def on_train_begin(self, logs=None):
        raise self.Stopped()


def attentive_tiny_model(num_classes=4, **kwargs):
    """A tiny random DANet whose attention counts: mmseg starts both gammas at 0, which
    would let a test pass with the attention wrong or skipped (at 0 the attention's own
    weights get no gradient either)."""
    from keras_danet import DANet
    from tests.conftest import TINY

    model = DANet(num_classes=num_classes, **TINY, **kwargs)
    model.get_layer("pam").gamma.assign(0.5)
    model.get_layer("cam").gamma.assign(0.5)
    return model


@contextlib.contextmanager
def mounted_tmpfs(folder, options):
    """A tmpfs mounted on the existing `folder` for the block (`options`: "size=300k",
    "ro,size=1m"): a real full disk or read-only folder. Skips the test where this machine
    gives no right to mount (CI and the developers' machines run as root)."""
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
        capture_output=True,
        text=True,
    )
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs ({options}) here: {done.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def hiding(*names):
    """Python source that makes `import name` fail in a child interpreter as if `name` were
    not installed. An import finder that raises, not `sys.modules[name] = None`: SciPy, which
    Keras imports with scikit-learn where installed, looks such entries up and fails."""
    return (
        "import sys\n"
        "class _Hidden:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        f"        if name.split('.')[0] in {names!r}:\n"
        "            raise ModuleNotFoundError('No module named ' + repr(name))\n"
        "sys.meta_path.insert(0, _Hidden())\n"
    )
