"""Test-time settings, the sliding-window grid, and `keras_danet.evaluate` end to end."""

import json

import numpy as np
import pytest

import keras_danet
from keras_danet import DANet, data
from keras_danet.inference import (
    multi_scale_flip_probabilities,
    predict_logits,
    slide_logits,
    whole_logits,
    window_boxes,
)
from keras_danet.metrics import SegmentationMetrics
from keras_danet.presets import TestSettings
from tests.conftest import TINY
from tests.helpers import attentive_tiny_model

CLASSES = ("sky", "road", "grass", "object")


def test_window_grid_of_the_769_configs_on_a_cityscapes_frame():
    boxes = window_boxes(1025, 2049, (769, 769), (513, 513))
    assert len(boxes) == 8  # 2 rows x 4 columns, as mmseg's slide_inference
    assert boxes[-1] == (256, 1025, 1280, 2049)  # pulled back to end at the border
    covered = np.zeros((1025, 2049), int)
    for top, bottom, left, right in boxes:
        assert (bottom - top, right - left) == (769, 769)
        covered[top:bottom, left:right] += 1
    assert covered.min() >= 1
    assert window_boxes(500, 700, (769, 769), (513, 513)) == [(0, 500, 0, 700)]


def test_settings_come_from_the_preset_and_can_be_overridden():
    model = DANet(num_classes=19, **TINY)
    assert TestSettings.of(model) == TestSettings("whole")
    model.preset_metadata = DANet.presets["danet_r50_d8_cityscapes_769x769_80k"].metadata()
    settings = TestSettings.of(model)
    assert settings == TestSettings("slide", (769, 769), (513, 513), (2049, 1025))
    assert TestSettings.of(model, mode="whole").mode == "whole"
    ade = DANet.presets["danet_r50_ade20k"].metadata()
    assert (ade["test_mode"], ade["test_scale"]) == ("whole", [2048, 512])
    with pytest.raises(ValueError, match="crop"):
        TestSettings("slide")
    with pytest.raises(ValueError, match="mode"):
        TestSettings("tiles")


@pytest.fixture(scope="module")
def model():
    return attentive_tiny_model()


def test_one_window_covering_the_image_is_the_whole_image(model):
    image = data.synthetic_scenes(1, 40, 56, seed=1)[0][0]
    np.testing.assert_allclose(
        slide_logits(model, image, (64, 64), (32, 32)), whole_logits(model, image), atol=1e-5
    )


def test_test_scale_resizes_and_logits_return_to_the_original_size(model):
    image = data.synthetic_scenes(1, 40, 56, seed=2)[0][0]
    logits = predict_logits(model, image, TestSettings("whole", scale=(96, 64)))
    assert logits.shape == (40, 56, 4)
    assert not np.allclose(logits, whole_logits(model, image), atol=1e-4)  # computed at 64x90


@pytest.fixture(scope="module")
def validation(tmp_path_factory):
    root = data.save_synthetic_scenes(str(tmp_path_factory.mktemp("scenes")), 4, 40, 56, seed=3)
    return data.folder(
        f"{root}/images", f"{root}/masks", ".png", ".png", class_names=CLASSES, split="val"
    )


def test_evaluate_a_dataset_and_report(model, validation, tmp_path):
    result = keras_danet.evaluate(
        model, validation, mode="slide", crop=(32, 32), stride=(24, 24), progress=False
    )
    metrics = SegmentationMetrics(4, CLASSES)
    settings = TestSettings("slide", (32, 32), (24, 24))
    for index in range(len(validation.files)):
        image, label = validation.sample(index)
        metrics.update(predict_logits(model, image, settings).argmax(-1), label)
    expected = metrics.result()
    np.testing.assert_array_equal(result.iou, expected.iou)
    assert result.images == 4 and result.seconds_per_image > 0
    text = str(result)
    assert all(name in text for name in CLASSES) and "mIoU" in text and "slide 32x32" in text
    saved = result.save_json(tmp_path / "out" / "metrics.json")
    with open(saved) as file:
        record = json.load(file)
    assert set(record["per_class"]) == set(CLASSES)
    assert record["mIoU"] == pytest.approx(result.miou)


def test_evaluate_multi_scale_flip_and_plain_batches(model, validation):
    pairs = [validation.sample(index) for index in range(2)]
    batches = [(np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])[..., None])]
    single = keras_danet.evaluate(model, batches, progress=False)
    assert single.images == 2
    tta = keras_danet.evaluate(model, batches, multi_scale=True, ratios=(0.75, 1.0), progress=False)
    assert tta.images == 2 and "multi-scale [0.75, 1.0] + flip" in tta.description
    metrics = SegmentationMetrics(4)
    for image, label in pairs:
        scores = multi_scale_flip_probabilities(model, image, ratios=(0.75, 1.0))
        metrics.update(scores.argmax(-1), label)
    np.testing.assert_array_equal(tta.iou, metrics.result().iou)


def test_evaluate_refuses_mismatched_class_names(model, validation):
    with pytest.raises(ValueError, match="3 class names for a model of 4 classes"):
        keras_danet.evaluate(model, validation, class_names=("a", "b", "c"), progress=False)


def test_evaluate_refuses_fractional_float_labels_and_reads_whole_ones(model, validation):
    image, label = validation.sample(0)
    fractional = label.astype("float32")
    fractional[0, 0] = 1.5
    with pytest.raises(ValueError, match=r"labels hold 1.5, not class indices"):
        keras_danet.evaluate(model, [(image[None], fractional[None])], progress=False)
    whole = keras_danet.evaluate(
        model, [(image[None], label[None].astype("float32"))], progress=False
    )
    exact = keras_danet.evaluate(model, [(image[None], label[None])], progress=False)
    np.testing.assert_array_equal(whole.iou, exact.iou)
