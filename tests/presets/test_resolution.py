"""Named presets: local cache, then the Hub, then the original checkpoint converted on demand.

The Hub is kept offline (HF_HUB_OFFLINE=1) or pointed at a refused loopback port, and the
original checkpoints come from file:// mirrors holding the tiny mmseg fixture.
"""

import logging
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from keras_danet import DANet, PresetError, convert_mmseg_checkpoint
from keras_danet.models.danet import CLASSIFIER_LAYERS
from tests.conftest import fixture_path, to_numpy
from tests.helpers import hiding
from tests.presets.conftest import REPOSITORY, make_mirror, preset_code, run_python, tiny_preset

pytest.importorskip("torch", reason="converting on demand reads .pth files with torch")


@pytest.fixture(autouse=True)
def _offline_hub(monkeypatch):
    # huggingface_hub reads HF_HUB_OFFLINE at import; its per-process constant is what counts.
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)


def _images():
    return np.random.default_rng(0).uniform(0, 255, (1, 64, 96, 3)).astype("float32")


def test_converts_on_demand_then_loads_from_the_cache(tmp_path, mirrored_preset, caplog):
    preset, mirror = mirrored_preset
    cache = tmp_path / "cache"
    caplog.set_level(logging.INFO, logger="keras_danet")
    model = DANet.from_preset(preset, mirror=mirror, cache_dir=cache, progress=False)
    messages = "\n".join(record.getMessage() for record in caplog.records)
    assert "not in the local cache" in messages
    assert "the Hugging Face Hub keras-danet-tests/no-such-repo@main failed" in messages
    assert "converted file://" in messages

    expected = to_numpy(convert_mmseg_checkpoint(fixture_path("danet_r50_tiny"))(_images()))
    np.testing.assert_array_equal(to_numpy(model(_images())), expected)
    assert os.listdir(cache / "presets") == ["danet_tiny_test"]  # the lock went with it

    caplog.clear()
    again = DANet.from_preset(preset, mirror="file:///nowhere", cache_dir=cache)
    assert "found in the local cache" in caplog.text and "converted" not in caplog.text
    np.testing.assert_array_equal(to_numpy(again(_images())), expected)


def test_wrong_hash_is_refused_and_leaves_nothing(tmp_path):
    real = DANet.presets["danet_r50_cityscapes"]
    mirror = make_mirror(tmp_path / "mirror", real)  # the tiny fixture under the real name
    cache = tmp_path / "cache"
    with pytest.raises(PresetError) as error:
        DANet.from_preset("danet_r50_cityscapes", mirror=mirror, cache_dir=cache)
    message = str(error.value)
    assert "Tried, in order:" in message and "local cache" in message
    assert "Hugging Face Hub keras-danet/danet_r50_d8_cityscapes_512x1024_80k@main" in message
    assert f"does not start with the expected {real.source.sha256_prefix}" in message
    assert os.listdir(cache / "presets") == []  # no download, no lock


def test_checkpoint_of_another_architecture_is_refused_and_leaves_nothing(tmp_path):
    # The hash matches (the preset names this very file), but it is an R101 with 7 classes.
    preset = tiny_preset(fixture="danet_r101_tiny_odd")
    mirror = make_mirror(tmp_path / "mirror", preset, fixture="danet_r101_tiny_odd")
    cache = tmp_path / "cache"
    with pytest.raises(
        PresetError,
        match="holds a DANet R101 with 7 classes; the preset "
        "danet_tiny_test is R50 with 19 classes",
    ):
        DANet.from_preset(preset, mirror=mirror, cache_dir=cache, progress=False)
    assert os.listdir(cache / "presets") == []


def test_damaged_cached_preset_is_deleted_then_fetched_anew(tmp_path, mirrored_preset):
    preset, mirror = mirrored_preset
    cache = tmp_path / "cache"
    DANet.from_preset(preset, mirror=mirror, cache_dir=cache, progress=False)
    weights = cache / "presets" / preset.name / "model.weights.h5"
    weights.write_bytes(weights.read_bytes()[:1000])  # truncated, as by a full disk
    with pytest.raises(PresetError, match="a save was interrupted. The cached copy was del"):
        DANet.from_preset(preset, mirror=mirror, cache_dir=cache)
    assert not os.path.exists(cache / "presets" / preset.name)
    model = DANet.from_preset(preset, mirror=mirror, cache_dir=cache, progress=False)
    assert model.num_classes == 19


def test_mirror_from_the_environment(tmp_path, mirrored_preset, monkeypatch):
    preset, mirror = mirrored_preset
    monkeypatch.setenv("KERAS_DANET_MMSEG_MIRROR", mirror)
    model = DANet.from_preset(preset, cache_dir=tmp_path / "cache", progress=False)
    assert model.num_classes == 19


def test_cache_location_from_keras_danet_home(tmp_path, mirrored_preset, monkeypatch):
    preset, mirror = mirrored_preset
    monkeypatch.setenv("KERAS_DANET_HOME", str(tmp_path / "home"))
    DANet.from_preset(preset, mirror=mirror, progress=False)
    assert os.path.isfile(tmp_path / "home" / "presets" / preset.name / "model.weights.h5")


def test_num_classes_reinitialises_only_the_classifiers(tmp_path, mirrored_preset, caplog):
    preset, mirror = mirrored_preset
    cache = tmp_path / "cache"
    pretrained = DANet.from_preset(preset, mirror=mirror, cache_dir=cache, progress=False)
    caplog.set_level(logging.INFO, logger="keras_danet")
    model = DANet.from_preset(preset, num_classes=4, mirror=mirror, cache_dir=cache)
    assert (
        "Re-initialised classifier, pam_classifier, cam_classifier, aux_classifier" in caplog.text
    )
    assert model.num_classes == 4 and model.predict(_images(), verbose=0).shape == (1, 64, 96, 4)
    compared = 0
    for new, old in zip(model.weights, pretrained.weights, strict=True):
        if new.path.split("/")[-2] in CLASSIFIER_LAYERS:
            assert new.shape[-1] == 4  # kernels and biases alike
            continue
        np.testing.assert_array_equal(to_numpy(new), to_numpy(old), err_msg=new.path)
        compared += 1
    assert compared == len(model.weights) - 8


def test_unknown_name_is_a_clear_error():
    with pytest.raises(PresetError, match="Unknown preset 'resnet50'"):
        DANet.from_preset("resnet50")


@pytest.mark.one_backend  # the Hub client's fallback; converting is tested on every backend
def test_hub_that_cannot_be_reached_falls_back(tmp_path, mirrored_preset):
    # A real connection attempt, refused at once by a closed loopback port.
    preset, mirror = mirrored_preset
    result = run_python(
        f"""
        import logging
        logging.basicConfig(level=logging.INFO)
        {preset_code(preset)}
        model = DANet.from_preset(preset, mirror={mirror!r}, cache_dir={str(tmp_path / "c")!r})
        print("CLASSES", model.num_classes)
        """,
        HF_ENDPOINT="http://127.0.0.1:1",
        HF_HUB_OFFLINE="0",
        HF_HUB_ETAG_TIMEOUT="5",
    )
    assert "CLASSES 19" in result.stdout, result.stderr[-3000:]
    assert "Connection refused" in result.stderr or "ConnectError" in result.stderr


@pytest.mark.one_backend  # its interpreter runs JAX whatever the pass's backend
def test_without_torch_the_error_gives_the_install_command(tmp_path, mirrored_preset):
    preset, mirror = mirrored_preset
    result = run_python(
        f"""
        exec({hiding("torch")!r})
        from keras_danet import PresetError
        {preset_code(preset)}
        try:
            DANet.from_preset(preset, mirror={mirror!r}, cache_dir={str(tmp_path / "c")!r})
        except PresetError as error:
            print("MESSAGE", error)
        """,
        HF_HUB_OFFLINE="1",
        KERAS_BACKEND="jax",
    )
    assert "pip install 'keras-danet[torch]'" in result.stdout, result.stderr[-3000:]


@pytest.mark.one_backend
def test_two_processes_loading_at_once(tmp_path, mirrored_preset):
    preset, mirror = mirrored_preset
    cache = str(tmp_path / "cache")
    code = f"""
        import logging
        logging.basicConfig(level=logging.INFO, format="%(message)s")
        import numpy as np
        {preset_code(preset)}
        model = DANet.from_preset(preset, mirror={mirror!r}, cache_dir={cache!r}, progress=False)
        x = np.random.default_rng(0).uniform(0, 255, (1, 32, 32, 3)).astype("float32")
        print("SUM", float(np.asarray(model.predict(x, verbose=0)).sum()))
        """
    env = dict(os.environ, PYTHONPATH=REPOSITORY, HF_HUB_OFFLINE="1")
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(code)],
            cwd=REPOSITORY,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [process.communicate(timeout=600) for process in processes]
    for process, (_, err) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, err[-3000:]
    sums = {line for out, _ in outputs for line in out.splitlines() if line.startswith("SUM")}
    assert len(sums) == 1  # both got the same model
    logs = "\n".join(err for _, err in outputs)
    assert logs.count(f"Preset {preset.name}: converted") == 1  # the lock let one convert
    folder = os.path.join(cache, "presets", preset.name)
    assert sorted(os.listdir(folder)) == ["config.json", "metadata.json", "model.weights.h5"]
    assert os.listdir(os.path.join(cache, "presets")) == [preset.name]
    DANet.from_preset(folder)  # still valid: its checksum is verified on load
