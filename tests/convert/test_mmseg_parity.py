"""The converted fixtures reproduce the tensors mmsegmentation's own code produced.

Fixtures come from tools/make_fixtures.sh (mmseg 1.2.2, random but well-scaled weights).
Tolerances:
- logits (main and full resolution): the contract, max(1e-4, 1e-4 * std) absolute;
- PAM/CAM/aux logits and backbone stages: 2e-3 * std. These tiny random networks amplify
  float32 round-off (BatchNorm channels of small variance): mmseg's own float32 output differs
  from its float64 output by up to 5e-4 * std on backbone_c4 of the R101 fixture.
"""

import keras
import numpy as np
import pytest

from keras_danet import DANet, convert_mmseg_checkpoint
from tests.conftest import MMSEG_FIXTURES, fixture_path, to_numpy

EXPECTED_CONFIGS = {
    "danet_r50_tiny": dict(depth=50, num_classes=19, base_channels=4, align_corners=False),
    "danet_r101_tiny_odd": dict(depth=101, num_classes=7, base_channels=2, align_corners=False),
    "danet_r50_tiny_align_corners": dict(
        depth=50, num_classes=5, base_channels=4, align_corners=True
    ),
}


@pytest.fixture(scope="module", params=MMSEG_FIXTURES)
def converted(request):
    name = request.param
    model = convert_mmseg_checkpoint(fixture_path(name))
    reference = dict(np.load(fixture_path(name, "reference.npz")))
    return name, model, reference


def _nchw(x):
    return np.transpose(to_numpy(x), (0, 3, 1, 2))


def _assert_close(name, ours, reference, relative):
    tolerance = relative * reference.std() if relative else max(1e-4, 1e-4 * reference.std())
    difference = np.abs(_nchw(ours) - reference).max()
    print(
        f"{keras.backend.backend()} {name}: max|diff| {difference:.2e}, tolerance "
        f"{tolerance:.2e}, std {reference.std():.3f}"
    )
    assert _nchw(ours).shape == reference.shape
    assert difference <= tolerance, f"{name}: {difference:.3e} > {tolerance:.3e}"


def test_inferred_config(converted):
    name, model, _ = converted
    config = model.get_config()
    for key, value in EXPECTED_CONFIGS[name].items():
        assert config[key] == value, key
    assert config["stem_channels"] == 8 and config["head_channels"] == 16
    assert config["pam_channels"] == 4 and config["aux_channels"] == 8


def test_full_resolution_logits(converted):
    name, model, reference = converted
    logits = model.predict(reference["input_rgb_0_255_nhwc"], verbose=0)
    _assert_close(f"{name} seg_logits_fullres", logits, reference["seg_logits_fullres"], None)
    agreement = (logits.argmax(-1) == reference["seg_logits_fullres"].argmax(1)).mean()
    assert agreement > 0.995


def test_head_logits(converted):
    name, model, reference = converted
    outputs = model.with_all_outputs(resize_to_input=False)(reference["input_rgb_0_255_nhwc"])
    _assert_close(f"{name} logits", outputs["main"], reference["logits"], None)
    for key in ("pam", "cam", "aux"):
        _assert_close(f"{name} {key}_logits", outputs[key], reference[f"{key}_logits"], 2e-3)


def test_backbone_stages(converted):
    name, model, reference = converted
    normalized = np.transpose(reference["input"], (0, 2, 3, 1))
    for index, stage in enumerate(model.backbone(normalized)):
        key = f"backbone_c{index + 1}"
        _assert_close(f"{name} {key}", stage, reference[key], 2e-3)


def test_normalisation_inside_the_model(converted):
    _, model, reference = converted
    normalized = model.get_layer("normalize")(reference["input_rgb_0_255_nhwc"])
    np.testing.assert_allclose(_nchw(normalized), reference["input"], atol=1e-6)


def test_every_weight_comes_from_the_checkpoint(converted):
    name, model, _ = converted
    # A fresh model differs everywhere the checkpoint was assigned, gammas included.
    fresh = DANet(**{k: v for k, v in model.get_config().items() if k != "name"})
    for converted_weight, fresh_weight in zip(model.weights, fresh.weights, strict=True):
        assert converted_weight.path == fresh_weight.path
        if "gamma" in converted_weight.path and tuple(converted_weight.shape) == ():
            assert float(to_numpy(converted_weight)) == pytest.approx(0.5)  # the tool's gamma
    assert any(
        not np.allclose(to_numpy(a), to_numpy(b))
        for a, b in zip(model.weights, fresh.weights, strict=True)
    )


# Mixed precision against mmseg's own reduced precision (torch.autocast on the same checkpoint
# and image; tools/mmseg_precision_reference.py), both measured from mmseg's float32 logits.
# mmseg float32 vs float64: 1.4e-5 of the logits' std. Measured, max|diff| / std and argmax
# agreement: mmseg autocast bfloat16 0.68 / 94.0 %, float16 0.058 / 98.6 %; ours bfloat16
# 0.67-0.76 / 93.7-94.1 %, float16 0.054-0.055 / 98.7-98.9 % over the three backends (this tiny
# random net is far touchier than a trained one). The bounds: twice mmseg's error, and
# its agreement less 3 points.
ERROR_FACTOR = 2.0
AGREEMENT_MARGIN = 0.03


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_logits_stay_as_close_to_float32_as_mmseg_autocast(policy):
    converted = convert_mmseg_checkpoint(fixture_path("danet_r50_tiny"))
    reference = np.load(fixture_path("danet_r50_tiny", "precision.npz"))
    keras.config.set_dtype_policy(policy)
    try:
        mixed = DANet.from_config(converted.get_config())
    finally:
        keras.config.set_dtype_policy("float32")
    mixed.set_weights(converted.get_weights())
    precision = policy.removeprefix("mixed_")
    assert mixed.get_layer("pam").compute_dtype == precision
    logits = mixed.predict(reference["image"][None], verbose=0)
    assert logits.dtype == np.float32 and np.isfinite(logits).all()
    expected = reference["logits_float32"]
    error = np.abs(_nchw(logits) - expected).max() / expected.std()
    agreement = np.mean(_nchw(logits).argmax(1) == expected.argmax(1))
    print(
        f"{keras.backend.backend()} {policy}: max|diff| / std {error:.3f} (mmseg autocast "
        f"{float(reference[f'error_{precision}']):.3f}), argmax agreement {agreement:.4f} "
        f"(mmseg {float(reference[f'agreement_{precision}']):.4f})"
    )
    assert error <= ERROR_FACTOR * reference[f"error_{precision}"]
    assert agreement >= reference[f"agreement_{precision}"] - AGREEMENT_MARGIN
