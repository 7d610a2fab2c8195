"""weights/publish.py's dry run, end to end on a tiny checkpoint made by mmsegmentation."""

import importlib.util
import json
import os

import numpy as np
import pytest

from keras_danet import DANet, convert_mmseg_checkpoint
from tests.conftest import fixture_path, to_numpy
from tests.presets.conftest import REPOSITORY, make_mirror, run_python

pytest.importorskip("torch", reason="publishing converts .pth files with torch")


def _publish_module():
    path = os.path.join(REPOSITORY, "weights", "publish.py")
    spec = importlib.util.spec_from_file_location("publish", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_dry_run_writes_presets_cards_and_manifest(tmp_path, mirrored_preset):
    preset, mirror = mirrored_preset
    output = tmp_path / "converted"
    manifest = _publish_module().publish(
        [preset], str(output), mirror=mirror, dry_run=True, progress=False
    )
    folder = output / preset.name
    assert sorted(os.listdir(folder)) == [
        "README.md",
        "config.json",
        "metadata.json",
        "model.weights.h5",
    ]
    card = (folder / "README.md").read_text()
    assert card.startswith("---\nlicense: apache-2.0\nlibrary_name: keras\n")
    assert 'value: 79.34, name: "mIoU (single scale)"' in card
    assert 'DANet.from_preset("danet_tiny_test")' in card
    metadata = json.loads((folder / "metadata.json").read_text())
    assert metadata["source_sha256"].startswith(preset.source.sha256_prefix)
    assert metadata["miou"] == 79.34 and metadata["class_names"][0] == "road"
    assert json.loads((output / "manifest.json").read_text()) == manifest
    assert "hub_revision" not in manifest[preset.name]  # a dry run uploads nothing

    images = np.random.default_rng(0).uniform(0, 255, (1, 64, 96, 3)).astype("float32")
    expected = to_numpy(convert_mmseg_checkpoint(fixture_path("danet_r50_tiny"))(images))
    np.testing.assert_array_equal(to_numpy(DANet.from_preset(str(folder))(images)), expected)


@pytest.mark.one_backend
def test_command_line_refuses_a_checkpoint_with_the_wrong_hash(tmp_path):
    mirror = make_mirror(tmp_path / "mirror", DANet.presets["danet_r101_voc12aug"])
    result = run_python(
        f"""
        import runpy, sys
        sys.argv = ["publish.py", "--dry-run", "--only", "danet_r101_voc12aug",
                    "--mirror", {mirror!r}, "--output", {str(tmp_path / "out")!r}]
        runpy.run_path("weights/publish.py", run_name="__main__")
        """
    )
    assert result.returncode == 1
    assert (
        "publish failed:" in result.stderr and "does not start with the expected" in result.stderr
    )
    assert not os.path.exists(tmp_path / "out" / "danet_r101_d8_voc12aug_512x512_40k")
