import numpy as np
import pytest

from keras_danet import ResNetV1c
from tests.conftest import to_numpy


def _stage_shapes(backbone, size):
    x = np.zeros((1, size, size, 3), "float32")
    return [tuple(to_numpy(stage).shape) for stage in backbone(x)]


def test_output_stride_8_with_a_769_window():
    # 769 -> 385 -> 193 -> 97, the mmseg sizes of the 769x769 configs.
    backbone = ResNetV1c(depth=50, stem_channels=8, base_channels=4)
    assert _stage_shapes(backbone, 769) == [
        (1, 193, 193, 16),
        (1, 97, 97, 32),
        (1, 97, 97, 64),
        (1, 97, 97, 128),
    ]


def test_output_stride_16():
    backbone = ResNetV1c(depth=50, output_stride=16, stem_channels=8, base_channels=4)
    assert [shape[1] for shape in _stage_shapes(backbone, 64)] == [16, 8, 4, 4]


def test_dilations_follow_contract_dilation():
    backbone = ResNetV1c(depth=101, stem_channels=8, base_channels=2)
    dilation = {
        layer.name: layer.dilation_rate[0]
        for layer in backbone.layers
        if layer.name.endswith("_conv2")
    }
    assert dilation["layer2_block0_conv2"] == 1
    assert dilation["layer3_block0_conv2"] == 1 and dilation["layer3_block22_conv2"] == 2
    assert dilation["layer4_block0_conv2"] == 2 and dilation["layer4_block2_conv2"] == 4
    assert backbone.get_layer("layer2_block0_conv2").strides == (2, 2)
    # mmseg adds a shortcut conv only where the width or stride changes: 8 == 2 * 4 here.
    names = {layer.name for layer in backbone.layers}
    assert "layer1_block0_downsample_conv" not in names
    assert "layer2_block0_downsample_conv" in names


def test_batch_norm_matches_pytorch_defaults():
    backbone = ResNetV1c(depth=50, stem_channels=8, base_channels=4)
    batch_norm = backbone.get_layer("layer1_block0_bn1")
    assert batch_norm.epsilon == 1e-5 and batch_norm.momentum == 0.9


def test_config_round_trip():
    backbone = ResNetV1c(depth=101, output_stride=16, stem_channels=8, base_channels=2)
    clone = ResNetV1c.from_config(backbone.get_config())
    assert clone.get_config() == backbone.get_config()
    assert clone.count_params() == backbone.count_params()


def test_bad_depth():
    with pytest.raises(ValueError, match="depth must be one of"):
        ResNetV1c(depth=18)


def test_depth_14_is_one_bottleneck_per_stage_with_depth_50s_outputs():
    light = ResNetV1c(depth=14, stem_channels=8, base_channels=4)
    blocks = {
        "_".join(layer.name.split("_")[:2]) for layer in light.layers if "_block" in layer.name
    }
    assert sorted(blocks) == [f"layer{stage}_block0" for stage in range(1, 5)]
    full = ResNetV1c(depth=50, stem_channels=8, base_channels=4)
    assert _stage_shapes(light, 64) == _stage_shapes(full, 64)
    assert light.count_params() < full.count_params() / 2
