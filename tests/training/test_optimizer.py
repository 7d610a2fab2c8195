"""TorchSGD and PolyDecay against torch.optim.SGD under mmengine's PolyLR (fixture by mmseg's
own stack, tools/mmseg_training_reference.py), on a well-conditioned least-squares problem."""

import keras
import numpy as np
import pytest

from keras_danet.training import PolyDecay, TorchSGD
from keras_danet.training.schedule import horizon_for
from tests.conftest import fixture_path, to_numpy

REFERENCE = np.load(fixture_path("danet_r50_tiny_train", "sgd_poly.npz"))
STEPS = len(REFERENCE["recipe_learning_rates"])


def _gradients(weights, bias):
    """Of 0.5 * mean((x @ w + b - y) ** 2), the loss of the fixture."""
    x, y = REFERENCE["x"], REFERENCE["y"]
    residual = x @ weights + bias - y
    return x.T @ residual / residual.size, residual.sum(0) / residual.size


def _trajectory(optimizer):
    weights = keras.Variable(REFERENCE["w0"])
    bias = keras.Variable(REFERENCE["b0"])
    rates, path = [], []
    for _ in range(STEPS):
        rates.append(float(to_numpy(optimizer.learning_rate)))
        grads = [
            keras.ops.convert_to_tensor(g) for g in _gradients(to_numpy(weights), to_numpy(bias))
        ]
        optimizer.apply_gradients(zip(grads, [weights, bias], strict=True))
        path.append((to_numpy(weights).copy(), to_numpy(bias).copy()))
    return np.array(rates), path


def _schedule():
    return PolyDecay(
        float(REFERENCE["lr"]),
        decay_steps=horizon_for(int(REFERENCE["horizon"])),
        end_learning_rate=float(REFERENCE["eta_min"]),
        power=float(REFERENCE["power"]),
    )


@pytest.mark.parametrize("run", ["recipe", "strong_decay", "nesterov"])
def test_matches_torch_sgd_and_mmengine_poly_lr_step_by_step(run):
    optimizer = TorchSGD(
        _schedule(),
        momentum=0.9,
        weight_decay=float(REFERENCE[f"{run}_weight_decay"]),
        nesterov=bool(REFERENCE[f"{run}_nesterov"]),
    )
    rates, path = _trajectory(optimizer)
    # Past the horizon too: the schedule holds the end rate, as mmengine's does.
    np.testing.assert_allclose(rates, REFERENCE[f"{run}_learning_rates"], rtol=1e-5)
    for step, (weights, bias) in enumerate(path):
        np.testing.assert_allclose(
            weights, REFERENCE[f"{run}_weights"][step], rtol=1e-5, atol=1e-6, err_msg=str(step)
        )
        np.testing.assert_allclose(bias, REFERENCE[f"{run}_biases"][step], rtol=1e-5, atol=1e-6)


def test_keras_decoupled_weight_decay_is_not_pytorchs():
    # Why TorchSGD exists: Keras' SGD, weight decay decoupled and lr folded into its momentum
    # buffer, leaves PyTorch's trajectory within a few steps.
    _, path = _trajectory(keras.optimizers.SGD(_schedule(), momentum=0.9, weight_decay=0.1))
    final = REFERENCE["strong_decay_weights"][-1]
    assert np.abs(path[-1][0] - final).max() > 100 * 1e-5 * np.abs(final).max()


def test_config_round_trip_keeps_pytorch_semantics():
    optimizer = TorchSGD(_schedule(), momentum=0.8, weight_decay=1e-3, nesterov=True)
    config = keras.optimizers.serialize(optimizer)
    clone = keras.optimizers.deserialize(config)
    assert isinstance(clone, TorchSGD)
    assert (clone.momentum, clone.l2_weight_decay, clone.nesterov) == (0.8, 1e-3, True)
    assert clone.weight_decay is None  # Keras' decoupled decay stays off
    assert isinstance(clone._learning_rate, PolyDecay)
    assert clone._learning_rate.decay_steps == horizon_for(int(REFERENCE["horizon"]))


def test_schedule_without_horizon_refuses_to_guess():
    with pytest.raises(RuntimeError, match="max_iterations"):
        PolyDecay(0.01)(0)


def test_bad_hyper_parameters_are_refused():
    with pytest.raises(ValueError, match="momentum"):
        TorchSGD(0.01, momentum=-0.1)
