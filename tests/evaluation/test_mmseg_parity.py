"""Sliding-window and multi-scale + flip inference, and the metrics, against mmseg 1.2.2.

Fixtures: tools/mmseg_inference_reference.py (mmseg's `slide_inference`, `SegTTAModel` on its
own TestTimeAug pipeline, and `IoUMetric`, with the tiny checkpoints of tests/fixtures).
Logits are held to the whole-image parity bound, max(1e-4, 1e-4 x std).
"""

import json
import os

import numpy as np
import pytest

from keras_danet import convert_mmseg_checkpoint
from keras_danet.data import read_image, read_label
from keras_danet.inference import (
    multi_scale_flip_probabilities,
    rescale_by,
    slide_logits,
)
from keras_danet.metrics import SegmentationMetrics
from keras_danet.presets import TestSettings
from tests.conftest import FIXTURES, fixture_path

FOLDER = os.path.join(FIXTURES, "evaluation")
REFERENCE = np.load(os.path.join(FOLDER, "reference.npz"))
with open(os.path.join(FOLDER, "cases.json")) as _file:
    CASES = json.load(_file)


def _bound(reference):
    return max(1e-4, 1e-4 * float(reference.std()))


@pytest.mark.parametrize("case", ["slide_0", "slide_1"])
def test_slide_inference_equals_mmseg(case):
    spec = CASES[case]
    model = convert_mmseg_checkpoint(fixture_path(spec["fixture"]))
    assert model.align_corners == spec["align_corners"]
    expected = REFERENCE[f"{case}_logits"]
    for batch in (1, 4):  # running windows together changes nothing
        logits = slide_logits(
            model, REFERENCE[f"{case}_image"], spec["crop"], spec["stride"], batch
        )
        assert logits.shape == expected.shape
        assert np.abs(logits - expected).max() <= _bound(expected)


def test_horizontal_and_vertical_flips_equal_mmseg_tta_model():
    # mmseg's TestTimeAug with RandomFlip(prob=1.0) views in both directions.
    spec = CASES["tta_vertical"]
    model = convert_mmseg_checkpoint(fixture_path("danet_r50_tiny"))
    image = read_image(os.path.join(FOLDER, spec["file"]))
    probabilities = multi_scale_flip_probabilities(
        model, image, TestSettings("whole"), spec["ratios"], flip=spec["directions"]
    )
    expected = REFERENCE["tta_vertical_probabilities"]
    assert np.abs(probabilities - expected).max() < 1e-5
    top_two = np.sort(expected, -1)[..., -2:]
    clear = top_two[..., 1] - top_two[..., 0] > 1e-4
    np.testing.assert_array_equal(
        probabilities.argmax(-1)[clear], REFERENCE["tta_vertical_prediction"][clear]
    )
    # Without the vertical views the average is another one.
    horizontal = multi_scale_flip_probabilities(
        model, image, TestSettings("whole"), spec["ratios"], flip=True
    )
    assert np.abs(horizontal - expected).max() > 1e-4


@pytest.mark.parametrize("flip", ["diagonal", ["vertical", "vertical"], [True]])
def test_unknown_flip_directions_are_named(flip):
    with pytest.raises(ValueError, match="flip must be True, False, or distinct directions"):
        multi_scale_flip_probabilities(  # refused before any model runs
            None, np.zeros((8, 8, 3), np.uint8), TestSettings("whole"), flip=flip
        )


def test_multi_scale_flip_equals_mmseg_tta_model():
    spec = CASES["tta"]
    model = convert_mmseg_checkpoint(fixture_path("danet_r50_tiny"))
    image = read_image(os.path.join(FOLDER, spec["file"]))
    np.testing.assert_array_equal(image, REFERENCE["tta_image"])
    views = [list(rescale_by(image, ratio).shape[:2]) for ratio in spec["ratios"]]
    assert views == spec["view_shapes"][::2]  # mmcv's double rounding of the view sizes
    probabilities = multi_scale_flip_probabilities(
        model, image, TestSettings("whole"), spec["ratios"], flip=True
    )
    expected = REFERENCE["tta_probabilities"]
    assert np.abs(probabilities - expected).max() < 1e-5
    top_two = np.sort(expected, -1)[..., -2:]
    clear = top_two[..., 1] - top_two[..., 0] > 1e-4  # argmax is only defined off ties
    assert clear.mean() > 0.9
    np.testing.assert_array_equal(
        probabilities.argmax(-1)[clear], REFERENCE["tta_prediction"][clear]
    )


def test_metrics_equal_mmseg_iou_metric():
    spec = CASES["metric"]
    raw_index = spec["raw_label_index"]
    loaded = read_label(os.path.join(FOLDER, spec["raw_label_file"]), reduce_zero_label=True)
    np.testing.assert_array_equal(loaded, REFERENCE[f"metric_label_{raw_index}"])
    metrics = SegmentationMetrics(spec["num_classes"])
    for index in range(spec["images"]):
        metrics.update(REFERENCE[f"metric_prediction_{index}"], REFERENCE[f"metric_label_{index}"])
    result = metrics.result()
    for ours, theirs in [(result.iou, "metric_iou"), (result.accuracy, "metric_acc")]:
        theirs = REFERENCE[theirs]
        np.testing.assert_array_equal(np.isnan(ours), np.isnan(theirs))
        np.testing.assert_allclose(ours[~np.isnan(ours)], theirs[~np.isnan(theirs)], atol=1e-6)
    assert result.iou[6] == 0 and np.isnan(result.accuracy[6])  # predicted, never labelled
    assert np.isnan(result.iou[7]) and np.isnan(result.accuracy[7])  # nowhere at all
    assert result.aacc == pytest.approx(float(REFERENCE["metric_aacc"]), abs=1e-6)
    for key, value in result.summary().items():
        assert value == pytest.approx(spec["summary"][key], abs=1e-4), key


@pytest.mark.parametrize("case", ["outside_issue", "outside_random"])
def test_predictions_outside_the_classes_count_as_mmseg_counts_them(case):
    # A labelled pixel predicted 255, -1 or a class of another set is in its label's area
    # (so wrong), in neither the predicted area nor the intersection.
    spec = CASES[case]
    metrics = SegmentationMetrics(spec["num_classes"])
    for index in range(spec["images"]):
        metrics.update(REFERENCE[f"{case}_prediction_{index}"], REFERENCE[f"{case}_label_{index}"])
    result = metrics.result()
    np.testing.assert_allclose(result.iou, REFERENCE[f"{case}_iou"], atol=1e-6)
    np.testing.assert_allclose(result.accuracy, REFERENCE[f"{case}_acc"], atol=1e-6)
    assert result.aacc == pytest.approx(float(REFERENCE[f"{case}_aacc"]), abs=1e-6)


def test_the_issue_case_of_a_prediction_outside_the_classes():
    # mmseg's numbers for label [0, 0, 1, 1], prediction [0, 255, 1, 1] (the fixture's).
    assert float(REFERENCE["outside_issue_aacc"]) == 0.75
    np.testing.assert_array_equal(REFERENCE["outside_issue_iou"], [0.5, 1.0])
    result = SegmentationMetrics(2).update(np.array([[0, 255, 1, 1]]), np.array([[0, 0, 1, 1]]))
    result = result.result()
    assert (result.aacc, list(result.accuracy), list(result.iou)) == (0.75, [0.5, 1], [0.5, 1])


@pytest.mark.parametrize("case", ["options_all", "options_beta_nan"])
def test_dice_fscore_beta_and_nan_to_num_equal_mmseg(case):
    spec, inputs = CASES[case], CASES["metric"]
    options = dict(spec["options"])
    metrics = SegmentationMetrics(
        inputs["num_classes"],
        metrics=options.pop("iou_metrics"),
        beta=options.pop("beta", 1),
        nan_to_num=options.pop("nan_to_num", None),
    )
    for index in range(inputs["images"]):
        metrics.update(REFERENCE[f"metric_prediction_{index}"], REFERENCE[f"metric_label_{index}"])
    result = metrics.result()
    assert ["aAcc", *result.columns()] == spec["keys"]  # mmseg's columns, in its order
    for key in result.columns():
        theirs, ours = REFERENCE[f"{case}_{key}"], result.per_class(key)
        np.testing.assert_array_equal(np.isnan(ours), np.isnan(theirs), err_msg=key)
        np.testing.assert_allclose(ours[~np.isnan(ours)], theirs[~np.isnan(theirs)], atol=1e-6)
    assert result.aacc == pytest.approx(float(REFERENCE[f"{case}_aAcc"]), abs=1e-6)
    assert result.summary() == pytest.approx(spec["summary"], abs=1e-4)
    assert list(result.summary()) == list(spec["summary"])
    record = result.to_dict()
    assert set(record["per_class"]["class_0"]) == set(result.columns())
    assert all(column in str(result) for column in spec["summary"])


def test_unknown_metrics_are_named():
    with pytest.raises(ValueError, match=r"Unknown metrics \['mAP'\]; known: \['mIoU'"):
        SegmentationMetrics(3, metrics=["mIoU", "mAP"])
