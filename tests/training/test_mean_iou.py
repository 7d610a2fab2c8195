import keras
import numpy as np
import pytest

import keras_danet


def _batch(seed, classes=5):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, (2, 7, 9)).astype("int32")
    labels[0, :2] = 255  # ignored
    labels[1, 0, :3] = classes + 1  # out of range: counts nothing in either
    logits = rng.normal(size=(2, 7, 9, classes)).astype("float32")
    return labels, logits


@pytest.mark.parametrize("weighted", [False, True])
def test_mean_iou_counts_what_keras_mean_iou_counts(weighted):
    ours = keras_danet.training.MeanIoU(num_classes=5)
    theirs = keras.metrics.MeanIoU(5, ignore_class=255, sparse_y_pred=False, dtype="float32")
    for seed in range(2):  # accumulates over batches
        labels, logits = _batch(seed)
        weights = None
        if weighted:
            weights = np.random.default_rng(seed).uniform(size=labels.shape)
            weights[labels == 255] = np.inf  # an ignored pixel counts nothing, whatever weight
        ours.update_state(labels, logits, sample_weight=weights)
        theirs.update_state(labels, logits, sample_weight=weights)
    matrix = keras.ops.convert_to_numpy(ours.total_cm)
    np.testing.assert_allclose(matrix, keras.ops.convert_to_numpy(theirs.total_cm), rtol=1e-6)
    assert matrix.sum() > 100
    assert float(ours.result()) == pytest.approx(float(theirs.result()), rel=1e-6)


def test_mean_iou_takes_class_maps_as_predictions():
    labels, logits = _batch(3)
    predictions = logits.argmax(-1)
    predictions[0, -1, :4] = 9  # a prediction out of range counts nothing
    ours = keras_danet.training.MeanIoU(num_classes=5, sparse_y_pred=True)
    theirs = keras.metrics.MeanIoU(5, ignore_class=255, sparse_y_pred=True, dtype="float32")
    ours.update_state(labels, predictions)
    theirs.update_state(labels, predictions)
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(ours.total_cm), keras.ops.convert_to_numpy(theirs.total_cm)
    )
