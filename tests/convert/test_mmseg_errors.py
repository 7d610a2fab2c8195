"""Bad checkpoints fail loudly, naming the file, the keys and the shapes."""

import os
import subprocess
import sys

import numpy as np
import pytest

from keras_danet.convert import CheckpointError, convert_mmseg_checkpoint
from tests.conftest import fixture_path
from tests.helpers import hiding

torch = pytest.importorskip("torch", reason="the [torch] extra is installed for every CI run")


def _tampered(tmp_path, change):
    checkpoint = torch.load(fixture_path("danet_r50_tiny"), weights_only=True)
    change(checkpoint["state_dict"])
    path = tmp_path / "tampered.pth"
    torch.save(checkpoint, path)
    return str(path)


def test_missing_key_is_named(tmp_path):
    path = _tampered(tmp_path, lambda sd: sd.pop("decode_head.pam.gamma.scale"))
    with pytest.raises(CheckpointError, match=r"missing decode_head\.pam\.gamma\.scale") as error:
        convert_mmseg_checkpoint(path)
    assert path in str(error.value)


def test_leftover_key_is_named(tmp_path):
    path = _tampered(tmp_path, lambda sd: sd.update({"decode_head.extra.weight": torch.ones(3)}))
    with pytest.raises(CheckpointError, match=r"unused decode_head\.extra\.weight \(3,\)"):
        convert_mmseg_checkpoint(path)


def test_shape_mismatch_lists_both_shapes(tmp_path):
    def widen(state_dict):
        state_dict["decode_head.pam_out_conv.bn.weight"] = torch.ones(17)

    path = _tampered(tmp_path, widen)
    with pytest.raises(CheckpointError, match=r"pam_out_conv\.bn\.weight: \(17,\).*needs \(16,\)"):
        convert_mmseg_checkpoint(path)


def test_not_a_danet_checkpoint(tmp_path):
    path = tmp_path / "resnet.pth"
    torch.save({"state_dict": {"conv1.weight": torch.ones(2, 3, 3, 3)}}, path)
    with pytest.raises(CheckpointError, match="not an mmseg DANet checkpoint"):
        convert_mmseg_checkpoint(path)


def test_a_checkpoint_without_its_auxiliary_head_says_so(tmp_path):
    def drop_aux(state_dict):
        for key in [key for key in state_dict if key.startswith("auxiliary_head.")]:
            del state_dict[key]

    path = _tampered(tmp_path, drop_aux)
    with pytest.raises(CheckpointError, match="without its FCN auxiliary head"):
        convert_mmseg_checkpoint(path)


def test_nan_weights_are_refused_by_name(tmp_path):
    def poison(state_dict):
        state_dict["decode_head.pam_out_conv.bn.weight"][3] = float("nan")
        state_dict["backbone.layer1.0.conv1.weight"][0, 0, 0, 0] = float("inf")

    path = _tampered(tmp_path, poison)
    with pytest.raises(
        CheckpointError,
        match=r"NaN or infinite values in 2 tensors: backbone\.layer1\.0\.conv1\.weight, "
        r"decode_head\.pam_out_conv\.bn\.weight",
    ):
        convert_mmseg_checkpoint(path)


def test_truncated_file(tmp_path):
    with open(fixture_path("danet_r50_tiny"), "rb") as file:
        data = file.read()
    path = tmp_path / "truncated.pth"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated.pth is not a readable"):
        convert_mmseg_checkpoint(path)


def test_pickled_code_is_refused(tmp_path):
    # weights_only=True refuses arbitrary objects: a checkpoint never runs code.
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {}, "meta": {"hook": np.random.default_rng(0)}}, path)
    with pytest.raises(CheckpointError, match="weights_only"):
        convert_mmseg_checkpoint(path)


def test_missing_file():
    with pytest.raises(FileNotFoundError, match="no_such.pth"):
        convert_mmseg_checkpoint("no_such.pth")


def test_official_danet_gamma_shape_one_is_accepted(tmp_path):
    # The official DANet code stores gamma with shape [1] instead of mmcv's 0-d scalar.
    def reshape(state_dict):
        for key in ("decode_head.pam.gamma.scale", "decode_head.cam.gamma.scale"):
            state_dict[key] = state_dict[key].reshape(1)

    model = convert_mmseg_checkpoint(_tampered(tmp_path, reshape))
    assert float(np.asarray(model.get_layer("pam").gamma.numpy())) == pytest.approx(0.5)


def test_torch_missing_gives_the_install_command():
    # Hide torch from a child process: the error must say how to get it.
    code = (
        hiding("torch") + "from keras_danet import convert_mmseg_checkpoint\n"
        f"try: convert_mmseg_checkpoint({fixture_path('danet_r50_tiny')!r})\n"
        "except ImportError as e: print('MESSAGE', e)\n"
    )
    environment = dict(os.environ, KERAS_BACKEND="jax" if _has("jax") else "tensorflow")
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=environment, timeout=300
    )
    assert "MESSAGE" in result.stdout, result.stderr[-2000:]
    assert "pip install 'keras-danet[torch]'" in result.stdout


def _has(module):
    import importlib.util

    return importlib.util.find_spec(module) is not None


def test_a_backbone_of_a_depth_mmseg_does_not_have_is_refused(tmp_path):
    def one_block_per_stage(state_dict):  # the layout of depth 14, which mmseg cannot build
        for key in [key for key in state_dict if key.startswith("backbone.layer")]:
            if key.split(".")[2] != "0":
                del state_dict[key]

    path = _tampered(tmp_path, one_block_per_stage)
    with pytest.raises(CheckpointError, match=r"stages have \(1, 1, 1, 1\) blocks") as error:
        convert_mmseg_checkpoint(path)
    assert path in str(error.value)
