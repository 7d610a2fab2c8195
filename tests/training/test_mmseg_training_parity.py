"""One training step of `compile()` + `train_on_batch` against mmseg 1.2.2's own training step.

Fixture: tools/mmseg_training_reference.py (mmseg's `model.loss()`, then torch.optim.SGD),
a tiny R50 DANet with dropout 0 and BatchNorm in train mode, 57x75 images, 7 classes and
10 % of labels 255. mmseg's float32 losses are within 2e-7 (relative) of its own float64
run, so losses are held to the issue's 1e-5. The update is compared as a whole, cosine and
norm ratio, because a single ReLU flip moves one tensor's gradient by about a percent (see
the fixture tool): we measured cosine >= 0.99996 and norm ratio within 2e-3 on all
backends, against mmseg fp32 vs fp64's 0.99999 / 7e-4 on a harder seed.
"""

import keras
import numpy as np
import pytest

from keras_danet import DANet, convert_mmseg_checkpoint
from tests.conftest import fixture_path, to_numpy
from tests.helpers import QUICK

FIXTURE = "danet_r50_tiny_train"
TERMS = {"main_loss": "loss_main", "pam_loss": "loss_pam", "cam_loss": "loss_cam"}
TERMS.update(aux_loss="loss_aux", loss="loss")


def _model(checkpoint):
    converted = convert_mmseg_checkpoint(fixture_path(FIXTURE, checkpoint))
    # The fixture ran with dropout 0, to be deterministic.
    model = DANet.from_config({**converted.get_config(), "dropout": 0.0})
    model.set_weights(converted.get_weights())
    return model


def _flat(arrays):
    return np.concatenate([np.ravel(a) for a in arrays]).astype(np.float64)


@pytest.fixture(scope="module")
def stepped():
    reference = np.load(fixture_path(FIXTURE, "reference.npz"))
    model = _model("checkpoint.pth")
    before = [to_numpy(w).copy() for w in model.weights]
    # The recipe; the first step runs at lr0 = 0.01. What a step computes, not how it is
    # compiled (QUICK: TensorFlow runs it eagerly instead of tracing for a minute).
    model.compile(max_iterations=40_000, **QUICK)
    logs = model.train_on_batch(
        reference["input_rgb_0_255_nhwc"], reference["labels"], return_dict=True
    )
    after = [to_numpy(w) for w in model.weights]
    return model, reference, logs, before, after


def test_loss_and_each_term_equal_mmseg(stepped):
    _, reference, logs, _, _ = stepped
    for ours, theirs in TERMS.items():
        assert logs[ours] == pytest.approx(float(reference[theirs]), rel=1e-5), ours


def test_first_update_equals_mmseg_sgd_step(stepped):
    model, _, _, before, after = stepped
    expected = [to_numpy(w) for w in _model("checkpoint_after.pth").weights]
    trainable = [i for i, weight in enumerate(model.weights) if weight.trainable]
    ours = _flat([after[i] - before[i] for i in trainable])
    theirs = _flat([expected[i] - before[i] for i in trainable])
    cosine = ours @ theirs / (np.linalg.norm(ours) * np.linalg.norm(theirs))
    assert cosine > 0.9995
    assert np.linalg.norm(ours) / np.linalg.norm(theirs) == pytest.approx(1.0, abs=5e-3)


def test_batch_norm_moving_statistics_equal_mmseg(stepped):
    # Forward-only quantities, so no chaos: PyTorch's momentum and unbiased running variance.
    model, _, _, before, after = stepped
    expected = [to_numpy(w) for w in _model("checkpoint_after.pth").weights]
    moving = [i for i, w in enumerate(model.weights) if "moving_" in w.path]
    assert len(moving) == 2 * 60  # every BatchNorm of the R50 DANet
    for i in moving:
        change = np.abs(expected[i] - before[i]).max()
        np.testing.assert_allclose(
            after[i], expected[i], rtol=0, atol=1e-3 * change, err_msg=model.weights[i].path
        )


def test_avg_non_ignore_terms_equal_mmseg():
    from keras_danet.training import DANetLoss

    reference = np.load(fixture_path(FIXTURE, "reference_avg_non_ignore.npz"))
    model = _model("checkpoint.pth")
    model.compile(loss=DANetLoss(avg_non_ignore=True), max_iterations=40_000, **QUICK)
    logs = model.train_on_batch(
        reference["input_rgb_0_255_nhwc"], reference["labels"], return_dict=True
    )
    for ours, theirs in TERMS.items():
        assert logs[ours] == pytest.approx(float(reference[theirs]), rel=1e-5), ours
    assert keras.ops.convert_to_numpy(model.optimizer.iterations) == 1
