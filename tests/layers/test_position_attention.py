import keras
import numpy as np
import pytest

from keras_danet import PositionAttention
from tests.conftest import to_numpy
from tests.helpers import assert_gradients_close, backend_gradients, numerical_gradients


def numpy_position_attention(
    x, query_kernel, query_bias, key_kernel, key_bias, value_kernel, value_bias, gamma
):
    """mmseg's PAM from the spec (section 2.2), in float64 NumPy, NHWC."""
    batch, height, width, channels = x.shape
    flat = x.reshape(batch, height * width, channels).astype(np.float64)
    query = flat @ query_kernel + query_bias
    key = flat @ key_kernel + key_bias
    value = flat @ value_kernel + value_bias
    energy = query @ key.transpose(0, 2, 1)  # no 1/sqrt(d)
    energy -= energy.max(-1, keepdims=True)
    attention = np.exp(energy) / np.exp(energy).sum(-1, keepdims=True)  # over the keys
    return (gamma * (attention @ value) + flat).reshape(x.shape)


def _randomized_layer(channels, key_channels, gamma, **kwargs):
    layer = PositionAttention(key_channels, **kwargs)
    layer.build((None, None, None, channels))
    rng = np.random.default_rng(1)
    for projection in (layer.query_project, layer.key_project, layer.value_project):
        projection.kernel.assign(rng.normal(0, 0.3, projection.kernel.shape))
        projection.bias.assign(rng.normal(0, 0.3, projection.bias.shape))
    layer.gamma.assign(gamma)
    return layer


def _numpy_weights(layer):
    weights = []
    for projection in (layer.query_project, layer.key_project, layer.value_project):
        weights += [to_numpy(projection.kernel)[0, 0], to_numpy(projection.bias)]
    return weights + [float(to_numpy(layer.gamma))]


@pytest.mark.parametrize("shape", [(2, 5, 7, 12), (1, 1, 1, 12), (1, 9, 4, 12)])
def test_matches_numpy_reference(shape):
    layer = _randomized_layer(12, 3, gamma=0.7)
    x = np.random.default_rng(0).normal(size=shape).astype("float32")
    expected = numpy_position_attention(x, *_numpy_weights(layer))
    np.testing.assert_allclose(to_numpy(layer(x)), expected, atol=2e-5, rtol=1e-5)


def test_gamma_zero_is_identity():
    layer = _randomized_layer(8, 2, gamma=0.0)
    x = np.random.default_rng(0).normal(size=(2, 6, 5, 8)).astype("float32")
    np.testing.assert_array_equal(to_numpy(layer(x)), x)


def test_new_layer_starts_as_identity():
    layer = PositionAttention(4)
    x = np.random.default_rng(0).normal(size=(1, 3, 3, 8)).astype("float32")
    np.testing.assert_array_equal(to_numpy(layer(x)), x)
    assert float(to_numpy(layer.gamma)) == 0.0 and tuple(layer.gamma.shape) == ()


def test_equivariant_to_permutations_of_positions():
    layer = _randomized_layer(8, 4, gamma=1.3)
    x = np.random.default_rng(0).normal(size=(2, 4, 6, 8)).astype("float32")
    permutation = np.random.default_rng(2).permutation(4 * 6)
    permuted = x.reshape(2, 24, 8)[:, permutation].reshape(x.shape)
    out = to_numpy(layer(x)).reshape(2, 24, 8)[:, permutation].reshape(x.shape)
    np.testing.assert_allclose(to_numpy(layer(permuted)), out, atol=1e-5)


def test_attention_scores_are_row_stochastic():
    layer = _randomized_layer(8, 4, gamma=0.5)
    x = np.random.default_rng(0).normal(size=(2, 3, 5, 8)).astype("float32")
    scores = to_numpy(layer.attention_scores(x))
    assert scores.shape == (2, 15, 15)
    np.testing.assert_allclose(scores.sum(-1), 1.0, atol=1e-5)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_is_close_to_float32(policy):
    reference = _randomized_layer(16, 8, gamma=0.5)
    mixed = _randomized_layer(16, 8, gamma=0.5, dtype=policy)
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 16)).astype("float32")
    out = mixed(x)
    assert keras.backend.standardize_dtype(out.dtype) == policy.removeprefix("mixed_")
    expected = to_numpy(reference(x))
    out = to_numpy(keras.ops.cast(out, "float32"))
    np.testing.assert_allclose(out, expected, atol=0.03 * np.abs(expected).max())


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_energies_beyond_float16_stay_finite(policy):
    layer = _randomized_layer(16, 8, gamma=0.5, dtype=policy)
    x = np.abs(np.random.default_rng(0).normal(size=(1, 8, 8, 16))).astype("float32") * 100
    weights = _numpy_weights(layer)
    query = x.reshape(64, 16) @ weights[0] + weights[1]
    key = x.reshape(64, 16) @ weights[2] + weights[3]
    assert np.abs(query @ key.T).max() > 65504  # q.k computed in float16 would be inf
    out = to_numpy(keras.ops.cast(layer(x), "float32"))
    assert np.isfinite(out).all()


def test_unknown_and_odd_spatial_size_in_a_functional_model():
    inputs = keras.Input((None, None, 8))
    model = keras.Model(inputs, _randomized_layer(8, 2, gamma=0.3)(inputs))
    for shape in [(1, 97, 97, 8), (2, 3, 11, 8)]:
        x = np.random.default_rng(0).normal(size=shape).astype("float32")
        assert to_numpy(model(x)).shape == shape


def test_serialization_round_trip(tmp_path):
    layer = _randomized_layer(8, 2, gamma=0.4, name="pam")
    config = layer.get_config()
    assert config["key_channels"] == 2
    clone = PositionAttention.from_config(config)
    assert clone.get_config() == config

    inputs = keras.Input((None, None, 8))
    model = keras.Model(inputs, layer(inputs))
    path = str(tmp_path / "pam.keras")
    model.save(path)
    restored = keras.saving.load_model(path)
    x = np.random.default_rng(0).normal(size=(1, 5, 6, 8)).astype("float32")
    assert isinstance(restored.get_layer("pam"), PositionAttention)
    np.testing.assert_array_equal(to_numpy(restored(x)), to_numpy(model(x)))


def test_rejects_bad_key_channels():
    with pytest.raises(ValueError, match="key_channels"):
        PositionAttention(0)


def test_gradients_match_float64_finite_differences():
    layer = _randomized_layer(6, 3, gamma=0.7)
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2, 3, 4, 6)).astype("float32")
    cotangent = rng.normal(size=x.shape).astype("float32")
    variables = layer.trainable_variables
    # The NumPy reference takes (query kernel, bias, key kernel, bias, value kernel, bias, gamma).
    order = [
        next(i for i, v in enumerate(variables) if v is wanted)
        for projection in (layer.query_project, layer.key_project, layer.value_project)
        for wanted in (projection.kernel, projection.bias)
    ] + [next(i for i, v in enumerate(variables) if v is layer.gamma)]

    def backend_loss(inputs, *values):
        outputs, _ = layer.stateless_call(list(values), [], inputs)
        return keras.ops.sum(keras.ops.multiply(outputs, cotangent))

    def numpy_loss(inputs, *values):
        arguments = [values[i] for i in order]
        arguments = [a[0, 0] if a.ndim == 4 else a for a in arguments]
        return np.sum(numpy_position_attention(inputs, *arguments) * cotangent)

    arrays = [x] + [to_numpy(v) for v in variables]
    assert_gradients_close(
        backend_gradients(backend_loss, arrays), numerical_gradients(numpy_loss, arrays)
    )


@pytest.mark.parametrize("implementation", ["naive", "chunked", "fused"])
def test_every_implementation_gives_the_same_outputs_and_gradients(implementation):
    # 5x7 = 35 positions in blocks of 8: four whole blocks and a padded one.
    layer = _randomized_layer(12, 3, gamma=0.7, implementation=implementation, query_chunk_size=8)
    rng = np.random.default_rng(6)
    x = rng.normal(size=(2, 5, 7, 12)).astype("float32")
    expected = numpy_position_attention(x, *_numpy_weights(layer))
    np.testing.assert_allclose(to_numpy(layer(x)), expected, rtol=1e-5, atol=1e-5)

    cotangent = rng.normal(size=x.shape).astype("float32")
    variables = layer.trainable_variables

    def backend_loss(inputs, *values):
        outputs, _ = layer.stateless_call(list(values), [], inputs)
        return keras.ops.sum(keras.ops.multiply(outputs, cotangent))

    naive = _randomized_layer(12, 3, gamma=0.7, implementation="naive")
    arrays = [x] + [to_numpy(v) for v in variables]
    naive_gradients = backend_gradients(
        lambda inputs, *values: keras.ops.sum(
            keras.ops.multiply(naive.stateless_call(list(values), [], inputs)[0], cotangent)
        ),
        arrays,
    )
    assert_gradients_close(backend_gradients(backend_loss, arrays), naive_gradients, rtol=5e-4)


def test_chunked_attention_on_unknown_sizes_in_a_compiled_model():
    inputs = keras.Input((None, None, 8))
    layer = _randomized_layer(8, 2, gamma=0.5, implementation="chunked", query_chunk_size=16)
    model = keras.Model(inputs, layer(inputs))
    model.compile(jit_compile=keras.backend.backend() != "torch")
    naive = _randomized_layer(8, 2, gamma=0.5, implementation="naive")
    for shape in [(1, 9, 11, 8), (2, 4, 3, 8)]:
        x = np.random.default_rng(0).normal(size=shape).astype("float32")
        np.testing.assert_allclose(
            model.predict(x, verbose=0), to_numpy(naive(x)), rtol=1e-5, atol=1e-5
        )


def test_attention_rows_of_chosen_queries():
    layer = _randomized_layer(8, 4, gamma=0.5)
    x = np.random.default_rng(0).normal(size=(1, 4, 6, 8)).astype("float32")
    rows = to_numpy(layer.attention_for(x, [0, 13, 23]))
    np.testing.assert_allclose(rows, to_numpy(layer.attention_scores(x))[:, [0, 13, 23]], atol=1e-6)


def test_global_switch_and_bad_names(monkeypatch):
    from keras_danet import config

    layer = PositionAttention(4)
    assert layer.resolved_implementation() == "chunked"
    config.set_attention_implementation("naive")
    try:
        assert layer.resolved_implementation() == "naive"
    finally:
        config.set_attention_implementation(None)
    monkeypatch.setenv("KERAS_DANET_ATTENTION", "fused")
    assert layer.resolved_implementation() == "fused"
    with pytest.raises(ValueError, match="implementation"):
        PositionAttention(4, implementation="flash")


def test_traced_for_export_the_chunked_layer_computes_the_whole_matrix():
    from keras_danet.config import tracing_for_export

    layer = _randomized_layer(12, 3, gamma=0.7, implementation="chunked", query_chunk_size=8)
    x = np.random.default_rng(7).normal(size=(2, 5, 7, 12)).astype("float32")
    chunked = to_numpy(layer(x))
    with tracing_for_export():
        assert layer.resolved_implementation() == "naive"
        exported = to_numpy(layer(x))
    assert layer.resolved_implementation() == "chunked"
    np.testing.assert_allclose(exported, chunked, rtol=1e-5, atol=1e-5)
    fused = _randomized_layer(12, 3, gamma=0.7, implementation="fused")
    with tracing_for_export():  # a choice made by name is kept
        assert fused.resolved_implementation() == "fused"
