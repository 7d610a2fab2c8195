import keras
import numpy as np
import pytest

from keras_danet import DANet
from tests.conftest import TINY, to_numpy


def _tiny(**kwargs):
    model = DANet(num_classes=5, **TINY, **kwargs)
    # Non-zero gammas, so that the attention paths count in every comparison below.
    model.get_layer("pam").gamma.assign(0.5)
    model.get_layer("cam").gamma.assign(0.5)
    return model


def _images(*shape):
    return np.random.default_rng(0).uniform(0, 255, size=shape + (3,)).astype("float32")


def _trainable_parameters(model):
    return sum(int(np.prod(weight.shape)) for weight in model.trainable_weights)


@pytest.mark.parametrize("depth, expected", [(50, 49_846_574), (101, 68_838_702)])
def test_full_size_parameter_counts_equal_mmseg(depth, expected):
    model = DANet(num_classes=19, depth=depth)
    assert _trainable_parameters(model) == expected
    batch_norms = [layer for layer in model.backbone.layers if "bn" in layer.name]
    assert len(batch_norms) == (55 if depth == 50 else 106)  # + 5 in the heads = mmseg's 60/111


def test_output_is_main_logits_at_input_size():
    model = _tiny()
    for height, width in [(64, 96), (57, 75), (33, 33)]:
        logits = model.predict(_images(2, height, width), verbose=0)
        assert logits.shape == (2, height, width, 5)
        assert logits.dtype == np.float32
    assert model.input.shape == (None, None, None, 3)


def test_with_all_outputs_shares_weights():
    model = _tiny()
    images = _images(1, 40, 56)
    outputs = model.with_all_outputs()(images)
    assert sorted(outputs) == ["aux", "cam", "main", "pam"]
    for value in outputs.values():
        assert tuple(value.shape) == (1, 40, 56, 5)
    np.testing.assert_allclose(to_numpy(outputs["main"]), to_numpy(model(images)), atol=1e-6)
    strided = model.with_all_outputs(resize_to_input=False)(images)
    assert tuple(strided["aux"].shape) == (1, 5, 7, 5)
    # The training heads are the model's own weights: counted, saved and trained with it.
    classifier_kernel = model.get_layer("aux_classifier").kernel
    assert any(weight is classifier_kernel for weight in model.trainable_weights)


def test_inference_graph_skips_the_training_heads():
    model = _tiny()
    names = {layer.name for layer in model.layers}
    assert "classifier" in names and "aux_classifier" not in names
    assert model.get_layer("aux_classifier").name == "aux_classifier"


def test_config_lists_constructor_arguments_and_round_trips():
    model = _tiny(align_corners=True, name="tiny")
    config = model.get_config()
    assert set(config) == {
        "name",
        "trainable",
        "num_classes",
        "depth",
        "output_stride",
        "stem_channels",
        "base_channels",
        "head_channels",
        "pam_channels",
        "aux_channels",
        "dropout",
        "align_corners",
        "mean",
        "std",
        "synchronized_batch_norm",
    }
    clone = DANet.from_config(config)
    assert clone.get_config() == config


PALETTE = np.arange(15).reshape(5, 3).tolist()


def test_keras_file_round_trip(tmp_path):
    model = _tiny(align_corners=True)
    # What the model knows travels too (model.save, ModelCheckpoint): before, load_model
    # gave {}, and segment fell back to whole-image inference without the test resize.
    model.preset_metadata.update(
        test_mode="slide",
        slide_crop=[24, 24],
        slide_stride=[16, 16],
        test_scale=[64, 40],
        class_names=["a", "b", "c", "d", "e"],
        palette=np.arange(15).reshape(5, 3),  # NumPy values are written as lists
    )
    path = str(tmp_path / "tiny.keras")
    model.save(path)
    restored = keras.saving.load_model(path)
    assert isinstance(restored, DANet)
    assert restored.preset_metadata == {**model.preset_metadata, "palette": PALETTE}
    images = _images(1, 33, 41)
    np.testing.assert_array_equal(to_numpy(restored(images)), to_numpy(model(images)))
    expected = model.segment(images[0])
    np.testing.assert_array_equal(restored.segment(images[0]), expected)
    restored.preset_metadata = {}  # what load_model gave before: whole image, no resize
    assert not np.array_equal(restored.segment(images[0]), expected)
    restored_aux = restored.with_all_outputs()(images)["aux"]
    np.testing.assert_array_equal(
        to_numpy(restored_aux), to_numpy(model.with_all_outputs()(images)["aux"])
    )


def test_compiled_forward_equals_eager():
    model = _tiny()
    images = _images(2, 48, 40)
    eager = to_numpy(model(images))
    # XLA on TensorFlow and JAX; PyTorch's equivalent (torch.compile) needs minutes of
    # inductor compilation on a CPU, so there `predict` runs its regular graph.
    model.compile(jit_compile=keras.backend.backend() in ("tensorflow", "jax"))
    compiled = model.predict(images, verbose=0)
    np.testing.assert_allclose(compiled, eager, atol=1e-5)


def test_mixed_float16_is_finite_and_close_to_float32():
    reference = _tiny()
    keras.config.set_dtype_policy("mixed_float16")
    mixed = _tiny()
    keras.config.set_dtype_policy("float32")
    mixed.set_weights(reference.get_weights())
    images = _images(1, 48, 64)
    expected = to_numpy(reference(images))
    out = to_numpy(mixed(images))
    assert out.dtype == np.float32  # the final resize keeps the logits in float32
    assert mixed.get_layer("pam").compute_dtype == "float16"
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out, expected, atol=0.05 * np.abs(expected).max())


@pytest.mark.parametrize(
    "bad", [dict(depth=34), dict(num_classes=0), dict(output_stride=32), dict(std=(1.0, 0.0, 1.0))]
)
def test_bad_arguments_are_refused(bad):
    with pytest.raises(ValueError):
        DANet(**{**TINY, **bad})


def test_layers_of_the_same_shape_start_from_different_weights():
    # A shared, unseeded Keras initializer would give them all the same values.
    model = DANet(num_classes=5, **TINY)
    kernels = [to_numpy(w) for w in model.weights if w.path.endswith("kernel")]
    shapes = [kernel.shape for kernel in kernels]
    assert len(set(shapes)) < len(shapes)  # some share a shape
    for i, first in enumerate(kernels):
        for second in kernels[i + 1 :]:
            assert first.shape != second.shape or not np.array_equal(first, second)


def test_get_classifier_and_reset_classifier_keep_every_other_weight():
    model = _tiny()
    classifiers = model.get_classifier()
    assert list(classifiers) == ["classifier", "pam_classifier", "cam_classifier", "aux_classifier"]
    assert all(layer.kernel.shape[-1] == 5 for layer in classifiers.values())
    model.preset_metadata = {"preset": "mine", "class_names": list("abcde"), "num_classes": 5}
    assert model.reset_classifier(5) is model  # already 5 classes: nothing to do
    tuned = model.reset_classifier(3)
    # The old classes' names are gone with the old classifier; where the rest came from stays.
    assert tuned.num_classes == 3 and tuned.preset_metadata == {"pretrained": "mine"}
    kept = 0
    for new, old in zip(tuned.weights, model.weights, strict=True):
        if new.path.split("/")[-2] in classifiers:
            assert new.shape[-1] == 3
        else:
            np.testing.assert_array_equal(to_numpy(new), to_numpy(old))
            kept += 1
    assert kept == len(model.weights) - 8
    images = _images(1, 32, 48)
    assert tuned.predict(images, verbose=0).shape == (1, 32, 48, 3)
    with pytest.raises(ValueError, match="positive whole number"):
        model.reset_classifier(2.5)


def test_backbone_argument_copies_a_backbone_and_its_widths():
    from keras_danet import ResNetV1c

    backbone = ResNetV1c(depth=50, stem_channels=8, base_channels=4)
    for weight in backbone.weights:  # away from any initial value
        weight.assign(np.random.default_rng(1).normal(size=weight.shape).astype("float32"))
    heads = {k: TINY[k] for k in ("head_channels", "pam_channels", "aux_channels")}
    model = DANet(num_classes=5, backbone=backbone, output_stride=16, **heads)
    assert (model.depth, model.stem_channels, model.base_channels) == (50, 8, 4)
    assert model.preset_metadata == {"backbone": f"ResNetV1c {backbone.name!r}"}
    for ours, theirs in zip(model.backbone.weights, backbone.weights, strict=True):
        np.testing.assert_array_equal(to_numpy(ours), to_numpy(theirs))
    assert "backbone" not in model.get_config()  # weights, not architecture
    with pytest.raises(TypeError, match="must be a ResNetV1c or a preset of one"):
        DANet(num_classes=5, backbone=keras.Sequential([keras.layers.Dense(2)]))
    with pytest.raises(ValueError, match="stem_channels=16, but the backbone given has"):
        DANet(num_classes=5, backbone=backbone, stem_channels=16)
