"""ImageNet backbone presets: mmseg's starting point, checked against mmseg itself.

The fixture (tools/mmseg_backbone_reference.py) is a tiny ResNet-V1c checkpoint laid out as
the open-mmlab://resnet50_v1c file, and the state mmseg 1.2.2's own `init_weights()` gives a
DANet built from it: the backbone's tensors, and the heads' initial values over 16 seeds.
"""

import dataclasses
import hashlib
import json
import os
import shutil

import keras
import numpy as np
import pytest

from keras_danet import DANet, PresetError, ResNetV1c
from keras_danet.convert.mmseg import _danet_layers, _variables_and_keys
from keras_danet.presets import MmsegCheckpoint
from keras_danet.presets.sources import PRETRAIN_ROOT
from tests.conftest import FIXTURES, to_numpy

pytest.importorskip("torch", reason="converting a .pth checkpoint needs torch")

FOLDER = os.path.join(FIXTURES, "resnet50_v1c_tiny")
CHECKPOINT = os.path.join(FOLDER, "resnet50_v1c_tiny.pth")
MMSEG = np.load(os.path.join(FOLDER, "initial_state.npz"))
SIZES = json.loads(str(MMSEG["config"]))
HEAD_SIZES = {k: SIZES[k] for k in ("head_channels", "pam_channels", "aux_channels")}


def _sha256_prefix(path):
    with open(path, "rb") as file:
        return hashlib.sha256(file.read()).hexdigest()[:8]


def tiny_backbone_preset(tmp_path):
    """The resnet50_v1c row, pointed at the tiny fixture in a file:// mirror."""
    prefix = _sha256_prefix(CHECKPOINT)
    preset = dataclasses.replace(
        ResNetV1c.presets["resnet50_v1c"],
        name="resnet_tiny_test",
        source=MmsegCheckpoint(f"resnet50_v1c-{prefix}.pth", root=PRETRAIN_ROOT),
        hub=None,
    )
    mirror = tmp_path / "mirror"
    mirror.mkdir(exist_ok=True)
    shutil.copy(CHECKPOINT, mirror / preset.source.file_name)
    return preset, "file://" + str(mirror)


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """(backbone, cache folder, preset, mirror): the tiny backbone converted once."""
    tmp_path = tmp_path_factory.mktemp("backbone")
    preset, mirror = tiny_backbone_preset(tmp_path)
    cache = tmp_path / "cache"
    backbone = ResNetV1c.from_preset(preset, mirror=mirror, cache_dir=cache, progress=False)
    return backbone, cache, preset, mirror


def _mmseg_backbone_values(model_layers):
    """Our backbone's variables beside mmseg's tensors of the same key."""
    for variable, key, transform in _variables_and_keys(model_layers):
        expected = MMSEG[key.replace(".", "/")]
        yield variable, key, transform(expected) if transform else expected


def test_backbone_preset_is_converted_into_the_cache_and_equals_mmseg(converted):
    backbone, cache, preset, _ = converted
    assert (backbone.depth, backbone.stem_channels, backbone.base_channels) == (
        SIZES["depth"],
        SIZES["stem_channels"],
        SIZES["base_channels"],
    )
    compared = 0
    for variable, key, expected in _mmseg_backbone_values(backbone.layers):
        np.testing.assert_array_equal(to_numpy(variable), expected, err_msg=key)
        compared += 1
    assert compared == len(backbone.weights) == 55 + 4 * 55  # 55 convs and BNs in an R50
    folder = cache / "presets" / preset.name
    metadata = json.loads((folder / "metadata.json").read_text())
    assert metadata["architecture"] == "ResNetV1c" and "num_classes" not in metadata
    assert metadata["source_sha256"].startswith(preset.source.sha256_prefix)
    assert backbone.preset_metadata["preset"] == "resnet_tiny_test"


def test_danet_from_the_backbone_starts_as_mmseg_starts(converted):
    backbone, *_ = converted
    keras.utils.set_random_seed(0)
    model = DANet(num_classes=SIZES["num_classes"], backbone=backbone, **HEAD_SIZES)
    assert model.preset_metadata == {"backbone": "resnet_tiny_test"}
    assert (model.stem_channels, model.base_channels) == (8, 4)  # the backbone's widths

    # The backbone: every tensor equal to mmseg's after its init_weights().
    for variable, key, expected in _mmseg_backbone_values(model.backbone.layers):
        np.testing.assert_array_equal(to_numpy(variable), expected, err_msg=key)

    # The heads: mmseg's initialisers, tensor by tensor. Constants (BatchNorm, gammas, the
    # conv_seg biases) exactly; random draws by a two-sample Kolmogorov-Smirnov test
    # against mmseg's draws, at a level (1e-4) no seed of a right init fails in practice,
    # while a wrong one (Glorot for PyTorch's default, a zero bias for a uniform one, a
    # fan-in for a fan-out) is rejected by a wide margin.
    heads = [layer for layer in _danet_layers(model) if layer not in model.backbone.layers]
    checked = 0
    for variable, key, _ in _variables_and_keys(heads):
        theirs = MMSEG[f"head/{key.replace('.', '/')}"]
        ours = to_numpy(variable).ravel()
        if theirs.std() == 0:
            np.testing.assert_array_equal(ours, np.full_like(ours, theirs[0]), err_msg=key)
        else:
            statistic, critical = _kolmogorov_smirnov(ours, theirs, alpha=1e-4)
            assert statistic < critical, f"{key}: D={statistic:.3f} >= {critical:.3f}"
        checked += 1
    assert checked == len([k for k in MMSEG.files if k.startswith("head/")]) == 41


def _kolmogorov_smirnov(a, b, alpha):
    """The two-sample statistic and its asymptotic critical value at level `alpha`."""
    a, b = np.sort(a), np.sort(b)
    values = np.concatenate([a, b])
    gap = np.abs(
        np.searchsorted(a, values, side="right") / len(a)
        - np.searchsorted(b, values, side="right") / len(b)
    )
    critical = np.sqrt(-np.log(alpha / 2) / 2) * np.sqrt((len(a) + len(b)) / (len(a) * len(b)))
    return gap.max(), critical


def test_the_test_of_distributions_rejects_a_wrong_init():
    # What the test above would say of the init this package had before: Glorot uniform
    # kernels and zero biases for PAM's projections.
    rng = np.random.default_rng(0)
    theirs = MMSEG["head/decode_head/pam/key_project/weight"]
    glorot = rng.uniform(-1, 1, 64 * 64) * np.sqrt(6 / (64 + 64))
    assert (
        _kolmogorov_smirnov(glorot, theirs, 1e-4)[0] >= _kolmogorov_smirnov(glorot, theirs, 1e-4)[1]
    )
    zeros = np.zeros(64)
    bias = MMSEG["head/decode_head/pam/key_project/bias"]
    assert _kolmogorov_smirnov(zeros, bias, 1e-4)[0] >= _kolmogorov_smirnov(zeros, bias, 1e-4)[1]


def test_by_name_from_the_cache_and_from_preset_with_classes(converted, monkeypatch, tmp_path):
    backbone, *_ = converted
    # The real name, served from a cache holding the converted tiny backbone.
    home = tmp_path / "home"
    backbone.save_to_preset(home / "presets" / "resnet50_v1c")
    monkeypatch.setenv("KERAS_DANET_HOME", str(home))
    model = DANet(num_classes=5, backbone="resnet50_v1c", **HEAD_SIZES)
    assert model.preset_metadata == {"backbone": "resnet50_v1c"}
    same = DANet.from_preset("resnet50_v1c", num_classes=5)
    for ours, theirs in zip(model.backbone.weights, same.backbone.weights, strict=True):
        np.testing.assert_array_equal(to_numpy(ours), to_numpy(theirs))
    assert same.num_classes == 5 and same.head_channels == 512  # mmseg's head widths
    assert same.compiled and not model.compiled  # from_preset compiles, a constructor not
    with pytest.raises(PresetError, match="is an ImageNet backbone, with no classifier"):
        DANet.from_preset("resnet50_v1c")
    with pytest.raises(ValueError, match="depth=101, but the backbone given has depth=50"):
        DANet(num_classes=5, depth=101, backbone=backbone)


def test_published_name_refuses_a_file_with_another_hash(tmp_path):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    shutil.copy(CHECKPOINT, mirror / "resnet50_v1c-2cccc1ad.pth")
    with pytest.raises(PresetError, match="does not start with the expected 2cccc1ad"):
        ResNetV1c.from_preset(
            "resnet50_v1c", mirror=f"file://{mirror}", cache_dir=tmp_path / "cache", progress=False
        )
    assert os.listdir(tmp_path / "cache" / "presets") == []


def test_backbone_of_a_danet_preset():
    danet = DANet.from_preset("danet_demo_shapes")
    backbone = ResNetV1c.from_preset("danet_demo_shapes")
    assert (
        isinstance(backbone, ResNetV1c)
        and backbone.preset_metadata["pretrained"] == "danet_demo_shapes"
    )
    for ours, theirs in zip(backbone.weights, danet.backbone.weights, strict=True):
        np.testing.assert_array_equal(to_numpy(ours), to_numpy(theirs))
    with pytest.raises(TypeError, match="takes no num_classes"):
        ResNetV1c.from_preset("danet_demo_shapes", num_classes=3)


def test_backbone_folder_serves_danet_and_subclasses(converted):
    backbone, cache, preset, _ = converted
    folder = str(cache / "presets" / preset.name)

    class MyDANet(DANet):
        pass

    model = MyDANet.from_preset(folder, num_classes=4)
    assert type(model) is MyDANet and model.num_classes == 4
    for ours, theirs in zip(model.backbone.weights, backbone.weights, strict=True):
        np.testing.assert_array_equal(to_numpy(ours), to_numpy(theirs))
    with pytest.raises(PresetError, match="'resnet_tiny_test' is an ImageNet backbone"):
        DANet.from_preset(folder)
