import keras
import numpy as np
import pytest

from keras_danet import ChannelAttention
from tests.conftest import to_numpy
from tests.helpers import assert_gradients_close, backend_gradients, numerical_gradients


def numpy_channel_attention(x, gamma):
    """mmseg's CAM from the spec (section 2.2), in float64 NumPy, NHWC."""
    batch, height, width, channels = x.shape
    features = x.reshape(batch, height * width, channels).astype(np.float64).transpose(0, 2, 1)
    energy = features @ features.transpose(0, 2, 1)  # (C, C)
    energy = energy.max(-1, keepdims=True) - energy  # rowmax - energy, not energy - rowmax
    energy -= energy.max(-1, keepdims=True)
    attention = np.exp(energy) / np.exp(energy).sum(-1, keepdims=True)
    out = gamma * (attention @ features) + features
    return out.transpose(0, 2, 1).reshape(x.shape)


def _layer(gamma, **kwargs):
    layer = ChannelAttention(**kwargs)
    layer.build((None, None, None, None))
    layer.gamma.assign(gamma)
    return layer


@pytest.mark.parametrize("shape", [(2, 5, 7, 6), (1, 1, 1, 4), (1, 13, 3, 9)])
def test_matches_numpy_reference(shape):
    x = np.random.default_rng(0).normal(size=shape).astype("float32") * 0.5
    np.testing.assert_allclose(
        to_numpy(_layer(0.8)(x)), numpy_channel_attention(x, 0.8), atol=2e-5, rtol=1e-5
    )


def test_sign_convention_favours_least_similar_channels():
    # Channel 0 is most similar to itself, so rowmax - energy gives itself the least weight.
    x = np.random.default_rng(0).normal(size=(1, 4, 4, 5)).astype("float32")
    scores = to_numpy(_layer(1.0).attention_scores(x))[0]
    energy = x.reshape(16, 5).T @ x.reshape(16, 5)
    assert scores.shape == (5, 5)
    np.testing.assert_array_equal(scores.argmin(-1), energy.argmax(-1))


def test_gamma_zero_is_identity():
    x = np.random.default_rng(0).normal(size=(2, 6, 5, 8)).astype("float32")
    np.testing.assert_array_equal(to_numpy(_layer(0.0)(x)), x)
    fresh = ChannelAttention()
    np.testing.assert_array_equal(to_numpy(fresh(x)), x)
    assert tuple(fresh.gamma.shape) == ()


def test_invariant_to_permutations_of_positions_up_to_the_same_permutation():
    x = np.random.default_rng(0).normal(size=(1, 4, 6, 8)).astype("float32")
    permutation = np.random.default_rng(2).permutation(24)
    permuted = x.reshape(1, 24, 8)[:, permutation].reshape(x.shape)
    layer = _layer(0.9)
    out = to_numpy(layer(x)).reshape(1, 24, 8)[:, permutation].reshape(x.shape)
    np.testing.assert_allclose(to_numpy(layer(permuted)), out, atol=1e-5)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_is_finite_and_close_to_float32(policy):
    # Post-ReLU activations of ~30 over 256 positions: energies of ~2e5 overflow float16.
    x = np.abs(np.random.default_rng(0).normal(size=(2, 16, 16, 8))).astype("float32") * 30
    assert (x.reshape(2, 256, 8) ** 2).sum(1).max() > 65504
    out = _layer(0.5, dtype=policy)(x)
    assert keras.backend.standardize_dtype(out.dtype) == policy.removeprefix("mixed_")
    out = to_numpy(keras.ops.cast(out, "float32"))
    assert np.isfinite(out).all()
    expected = numpy_channel_attention(x, 0.5)
    np.testing.assert_allclose(out, expected, rtol=0.02, atol=0.02 * np.abs(expected).max())


def test_unknown_and_odd_spatial_size_in_a_functional_model(tmp_path):
    inputs = keras.Input((None, None, 6))
    model = keras.Model(inputs, _layer(0.3, name="cam")(inputs))
    x = np.random.default_rng(0).normal(size=(1, 97, 97, 6)).astype("float32")
    np.testing.assert_allclose(to_numpy(model(x)), numpy_channel_attention(x, 0.3), atol=5e-5)

    path = str(tmp_path / "cam.keras")
    model.save(path)
    restored = keras.saving.load_model(path)
    assert isinstance(restored.get_layer("cam"), ChannelAttention)
    np.testing.assert_array_equal(to_numpy(restored(x)), to_numpy(model(x)))
    assert ChannelAttention.from_config(restored.get_layer("cam").get_config()).name == "cam"


def test_gradients_match_float64_finite_differences():
    layer = _layer(0.6)
    rng = np.random.default_rng(4)
    x = rng.normal(size=(2, 3, 4, 5)).astype("float32") * 0.5
    cotangent = rng.normal(size=x.shape).astype("float32")

    def backend_loss(inputs, gamma):
        outputs, _ = layer.stateless_call([gamma], [], inputs)
        return keras.ops.sum(keras.ops.multiply(outputs, cotangent))

    def numpy_loss(inputs, gamma):
        return np.sum(numpy_channel_attention(inputs, gamma) * cotangent)

    arrays = [x, np.float32(0.6)]
    assert_gradients_close(
        backend_gradients(backend_loss, arrays), numerical_gradients(numpy_loss, arrays)
    )
