"""`compile()` with no arguments is mmseg's DANet recipe, and `fit` & co. work with it."""

import warnings

import keras
import numpy as np
import pytest

from keras_danet import DANet
from keras_danet.training import DANetLoss, MeanIoU, PolyDecay, TorchSGD
from tests.conftest import TINY, to_numpy
from tests.helpers import QUICK, StopAtTrainBegin

CLASSES = 4


def _model(**kwargs):
    return DANet(num_classes=CLASSES, **TINY, **kwargs)


def _data(count=4, height=32, width=40, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.uniform(0, 255, size=(count, height, width, 3)).astype("float32")
    labels = rng.integers(0, CLASSES, size=(count, height, width)).astype("uint8")
    labels[:, :, :5] = 255
    return images, labels


def _assert_no_missing_gradient_warning(caught):
    messages = [str(w.message) for w in caught]
    assert not [m for m in messages if "Gradients do not exist" in m], messages


def test_compile_defaults_are_the_mmseg_recipe():
    model = _model()
    model.compile()
    optimizer = model.optimizer
    assert isinstance(optimizer, TorchSGD)
    assert (optimizer.momentum, optimizer.l2_weight_decay, optimizer.nesterov) == (0.9, 5e-4, False)
    schedule = optimizer._learning_rate
    assert isinstance(schedule, PolyDecay)
    assert (schedule.initial_learning_rate, schedule.end_learning_rate, schedule.power) == (
        0.01,
        1e-4,
        0.9,
    )
    assert schedule.decay_steps is None  # fit() sets it
    assert model._danet_loss.head_weights == {"main": 1.0, "pam": 1.0, "cam": 1.0, "aux": 0.4}
    assert not model._danet_loss.avg_non_ignore and model._danet_loss.ignore_index == 255
    [metric] = model._compile_metrics._user_metrics
    assert isinstance(metric, MeanIoU)
    assert (metric.ignore_class, metric.num_classes, metric.sparse_y_pred) == (255, CLASSES, False)


def test_fit_sets_the_horizon_and_logs_every_term_without_gradient_warnings(tmp_path):
    model = _model()
    model.compile()
    images, labels = _data()
    board = keras.callbacks.TensorBoard(tmp_path, write_graph=False, profile_batch=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = model.fit(images, labels, batch_size=2, epochs=6, verbose=0, callbacks=[board])
    _assert_no_missing_gradient_warning(caught)
    # TensorBoard (the notebook extra) shows every term, on every backend.
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "train")).Reload()
    tags = set(events.Tags()["tensors"])
    assert {"epoch_loss", "epoch_main_loss", "epoch_aux_loss", "epoch_mean_iou"} <= tags, tags
    assert len(events.Tensors("epoch_main_loss")) == 6
    # 6 epochs x 2 steps; mmseg's PolyLR reaches the end rate at the last iteration.
    assert model.optimizer._learning_rate.decay_steps == 11
    assert int(to_numpy(model.optimizer.iterations)) == 12
    assert float(to_numpy(model.optimizer.learning_rate)) == pytest.approx(1e-4)
    # The last step runs at step == decay_steps, where XLA's 11 * (1 / 11) > 1 made Keras'
    # PolynomialDecay return NaN and every weight NaN after it (JAX).
    assert all(np.isfinite(to_numpy(weight)).all() for weight in model.weights)
    logs = history.history
    assert set(logs) == {"loss", "main_loss", "pam_loss", "cam_loss", "aux_loss", "mean_iou"}
    for epoch in range(6):
        terms = sum(logs[f"{head}_loss"][epoch] for head in ("main", "pam", "cam", "aux"))
        assert logs["loss"][epoch] == pytest.approx(terms, rel=1e-5)
        assert np.isfinite(logs["loss"][epoch]) and 0 <= logs["mean_iou"][epoch] <= 1
    # The auxiliary classifier starts near uniform (mmseg's N(0, 0.01) init): its term is
    # 0.4 x log(4) x the labelled fraction, since ignored pixels count in the average.
    labelled = np.mean(labels != 255)
    assert logs["aux_loss"][0] == pytest.approx(0.4 * np.log(CLASSES) * labelled, rel=0.02)


def test_the_heads_and_the_attention_gammas_train():
    model = _model()
    model.compile(max_iterations=10, **QUICK)
    images, labels = _data()
    watched = [w for w in model.training_heads.trainable_weights]
    watched += [model.get_layer("pam").gamma, model.get_layer("cam").gamma]
    before = [to_numpy(w).copy() for w in watched]
    model.train_on_batch(images, labels)
    for value, weight in zip(before, watched, strict=True):
        assert not np.array_equal(value, to_numpy(weight)), weight.path


def _weight(model, path):
    return next(w for w in model.weights if w.path == path)


def test_train_on_batch_without_a_horizon_says_how_to_give_one():
    model = _model()
    model.compile(**QUICK)
    images, labels = _data(count=2)
    with pytest.raises(Exception, match="max_iterations"):
        model.train_on_batch(images, labels)


def test_labels_with_a_channel_axis_and_uint8_images():
    model = _model()
    model.compile(max_iterations=10, **QUICK)
    images, labels = _data(count=2)
    plain = model.test_on_batch(images, labels, return_dict=True)
    other = model.test_on_batch(
        np.round(images).astype("uint8"), labels[..., None].astype("int32"), return_dict=True
    )
    assert other["loss"] == pytest.approx(plain["loss"], rel=1e-3)
    logs = model.train_on_batch(images.astype("uint8"), labels[..., None], return_dict=True)
    assert np.isfinite(logs["loss"])


def test_mismatched_label_size_is_a_clear_error():
    model = _model()
    model.compile(max_iterations=10, **QUICK)
    images, labels = _data(count=2)
    with pytest.raises(ValueError, match="each mask must have its image's size"):
        model.train_on_batch(images, labels[:, :16])


def test_evaluate_reports_the_main_loss_and_miou():
    model = _model()
    model.compile(max_iterations=10, **QUICK)
    images, labels = _data()
    results = model.evaluate(images, labels, batch_size=2, verbose=0, return_dict=True)
    assert set(results) == {"loss", "mean_iou"}
    logits = model.predict(images, verbose=0)
    expected = DANetLoss().terms(labels, logits)["main"]
    assert results["loss"] == pytest.approx(float(to_numpy(expected)), rel=1e-4)


def test_mean_iou_metric_ignores_255_and_reads_logits():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, size=(2, 6, 7))
    labels[0, :2] = 255
    logits = rng.normal(size=(2, 6, 7, 3)).astype("float32")
    model = DANet(num_classes=3, **TINY)
    model.compile()
    [metric] = model._compile_metrics._user_metrics
    metric.update_state(labels, logits)
    predicted, valid = logits.argmax(-1), labels != 255
    ious = []
    for c in range(3):
        intersection = np.sum((predicted == c) & (labels == c) & valid)
        union = np.sum(((predicted == c) | (labels == c)) & valid)
        ious.append(intersection / union)
    assert float(to_numpy(metric.result())) == pytest.approx(np.mean(ious), rel=1e-6)


def test_mean_dice_metric_equals_mmseg_over_images_of_several_sizes():
    """mmseg 1.2.2's IoUMetric(iou_metrics=["mDice", ...]) on the metric_* fixture inputs
    (absent classes, an all-255 image, 255 in labels); the metric reads one-hot logits."""
    import json
    import os

    from keras_danet.training import MeanDice
    from tests.conftest import FIXTURES

    folder = os.path.join(FIXTURES, "evaluation")
    reference = np.load(os.path.join(folder, "reference.npz"))
    with open(os.path.join(folder, "cases.json")) as file:
        spec = json.load(file)["metric"]
    metric = MeanDice(spec["num_classes"])
    # One update of every pixel (the counts do not depend on the layout): one shape to
    # trace on JAX instead of five.
    labels = [reference[f"metric_label_{i}"].ravel() for i in range(spec["images"])]
    predictions = [reference[f"metric_prediction_{i}"].ravel() for i in range(spec["images"])]
    logits = np.eye(spec["num_classes"], dtype="float32")[np.concatenate(predictions)]
    metric.update_state(np.concatenate(labels)[None], logits[None])
    expected = np.nanmean(reference["options_all_Dice"])
    assert float(to_numpy(metric.result())) == pytest.approx(expected, rel=1e-6)
    assert keras.metrics.deserialize(keras.metrics.serialize(metric)).get_config() == (
        metric.get_config()
    )


def test_compile_names_mmseg_metrics_and_evaluate_logs_mean_dice():
    from keras_danet.metrics import SegmentationMetrics

    model = _model()
    model.compile(max_iterations=10, metrics=["mIoU", "mDice"], **QUICK)
    images, labels = _data()
    results = model.evaluate(images, labels, batch_size=2, verbose=0, return_dict=True)
    assert set(results) == {"loss", "mean_iou", "mean_dice"}
    predicted = model.predict(images, verbose=0).argmax(-1)
    counted = SegmentationMetrics(CLASSES, metrics=["mIoU", "mDice"])
    for prediction, label in zip(predicted, labels, strict=True):
        counted.update(prediction, label)
    counted = counted.result()
    assert results["mean_dice"] == pytest.approx(counted.mdice, rel=1e-5)
    assert results["mean_iou"] == pytest.approx(counted.miou, rel=1e-5)
    with pytest.raises(ValueError, match="mFscore is not a fit metric"):
        model.compile(metrics=["mFscore"])


def _horizon_set_by_fit(data, **fit_arguments):
    model = _model()
    model.compile()
    with pytest.raises(StopAtTrainBegin.Stopped):
        model.fit(data, verbose=0, callbacks=[StopAtTrainBegin()], **fit_arguments)
    return model.optimizer._learning_rate.decay_steps


def test_fit_accepts_tf_data_and_py_dataset():
    import tensorflow as tf

    images, labels = _data()

    class Batches(keras.utils.PyDataset):
        def __len__(self):
            return 2

        def __getitem__(self, index):
            return images[2 * index : 2 * index + 2], labels[2 * index : 2 * index + 2]

    # uint8 images and (batch, H, W, 1) labels, as image pipelines give them.
    dataset = tf.data.Dataset.from_tensor_slices((images.astype("uint8"), labels[..., None])).batch(
        2
    )
    model = _model()
    model.compile(**QUICK)
    history = model.fit(dataset, epochs=2, verbose=0)
    assert model.optimizer._learning_rate.decay_steps == 3
    assert np.isfinite(history.history["loss"]).all()
    model.fit(Batches(), epochs=1, verbose=0)  # the horizon of the first fit() is kept
    assert int(to_numpy(model.optimizer.iterations)) == 6

    assert _horizon_set_by_fit(Batches(), epochs=3) == 5
    endless = dataset.repeat()  # unknown length: fit needs steps_per_epoch
    with pytest.raises(ValueError, match="steps_per_epoch"):
        _horizon_set_by_fit(endless, epochs=1)
    assert _horizon_set_by_fit(endless, epochs=2, steps_per_epoch=3) == 5


def test_a_custom_loss_trains_the_main_output_only():
    model = _model()
    model.compile(
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=255),
        optimizer=keras.optimizers.SGD(0.1),
        **QUICK,
    )
    images, labels = _data(count=2)
    heads = {w.path: to_numpy(w).copy() for w in model.training_heads.weights}
    classifier = to_numpy(model.get_layer("classifier").kernel).copy()
    statistics = to_numpy(model.get_layer("stem_bn1").moving_mean).copy()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        logs = model.train_on_batch(images, labels, return_dict=True)
    _assert_no_missing_gradient_warning(caught)
    assert set(logs) == {"loss", "mean_iou"} and np.isfinite(logs["loss"])
    assert not np.array_equal(classifier, to_numpy(model.get_layer("classifier").kernel))
    # The backbone's BatchNorm statistics move in training mode.
    assert not np.array_equal(statistics, to_numpy(model.get_layer("stem_bn1").moving_mean))
    for path, value in heads.items():
        np.testing.assert_array_equal(value, to_numpy(_weight(model, path)))
    # Keras' loss would take float labels; the recipe's metrics refuse them in every step.
    for step in (model.train_on_batch, model.test_on_batch):
        with pytest.raises(ValueError, match="Labels must be integer class indices"):
            step(images, labels.astype("float32"))
    model.compile()  # the recipe again trains the heads too
    assert model.training_heads.trainable


def test_compiled_model_saves_and_reloads_with_its_recipe(tmp_path):
    model = _model(dropout=0.0)  # two dropout masks would differ
    model.compile(max_iterations=20, **QUICK)
    images, labels = _data(count=2)
    model.train_on_batch(images, labels)
    path = str(tmp_path / "danet.keras")
    model.save(path)
    restored = keras.saving.load_model(path)
    assert isinstance(restored.optimizer, TorchSGD)
    assert isinstance(restored._danet_loss, DANetLoss)
    assert restored.optimizer._learning_rate.decay_steps == 19
    assert int(to_numpy(restored.optimizer.iterations)) == 1
    for saved, loaded in zip(model.optimizer.variables, restored.optimizer.variables, strict=True):
        np.testing.assert_array_equal(to_numpy(saved), to_numpy(loaded))
    first = model.train_on_batch(images, labels, return_dict=True)
    second = restored.train_on_batch(images, labels, return_dict=True)
    assert second["loss"] == pytest.approx(first["loss"], rel=1e-4)


def test_frozen_backbone_keeps_weights_and_statistics():
    model = _model()
    model.backbone.trainable = False
    model.compile(max_iterations=10, **QUICK)
    images, labels = _data()
    backbone = [to_numpy(w).copy() for w in model.backbone.weights]
    head = to_numpy(model.get_layer("pam_in_bn").moving_mean).copy()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(images, labels, batch_size=2, epochs=1, verbose=0)
    _assert_no_missing_gradient_warning(caught)
    for before, weight in zip(backbone, model.backbone.weights, strict=True):
        np.testing.assert_array_equal(before, to_numpy(weight), err_msg=weight.path)
    assert not np.array_equal(head, to_numpy(model.get_layer("pam_in_bn").moving_mean))


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_fit_stays_finite_and_close_to_float32(policy):
    images, labels = _data(count=2)
    reference = _model()
    reference.compile(max_iterations=10, **QUICK)
    keras.config.set_dtype_policy(policy)
    mixed = _model()
    keras.config.set_dtype_policy("float32")
    mixed.set_weights(reference.get_weights())
    mixed.compile(max_iterations=10, **QUICK)
    if policy == "mixed_float16":
        assert isinstance(mixed.optimizer, keras.optimizers.LossScaleOptimizer)
    for step in range(3):
        expected = reference.train_on_batch(images, labels, return_dict=True)
        got = mixed.train_on_batch(images, labels, return_dict=True)
        assert np.isfinite(list(got.values())).all(), (step, got)
        # bfloat16 keeps 8 bits of mantissa: the losses agree to about a percent.
        assert got["loss"] == pytest.approx(expected["loss"], rel=0.02), (step, got, expected)
