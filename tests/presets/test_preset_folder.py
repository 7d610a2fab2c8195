import json
import os
import pathlib

import keras
import numpy as np
import pytest

from keras_danet import DANet, Preset, PresetError
from keras_danet.presets import TestSettings
from keras_danet.presets.files import sha256_file
from keras_danet.training import TorchSGD
from keras_danet.training.schedule import horizon_for, poly_schedule_of
from tests.conftest import TINY, to_numpy
from tests.helpers import StopAtTrainBegin


def _tiny_model():
    model = DANet(num_classes=5, **TINY)
    for name in ("pam", "cam"):
        model.get_layer(name).gamma.assign(0.5)
    return model


def _images():
    return np.random.default_rng(0).uniform(0, 255, (1, 40, 48, 3)).astype("float32")


def test_save_then_load_gives_identical_outputs(tmp_path):
    model = _tiny_model()
    folder = model.save_to_preset(tmp_path / "preset", metadata={"note": "tiny"})
    assert sorted(os.listdir(folder)) == ["config.json", "metadata.json", "model.weights.h5"]
    metadata = json.loads(pathlib.Path(folder, "metadata.json").read_text())
    assert metadata["note"] == "tiny" and metadata["num_classes"] == 5
    assert metadata["weights_sha256"] == sha256_file(os.path.join(folder, "model.weights.h5"))
    config = json.loads(pathlib.Path(folder, "config.json").read_text())
    assert config["registered_name"] == "keras_danet>DANet"
    restored = DANet.from_preset(str(tmp_path / "preset"))
    np.testing.assert_array_equal(to_numpy(restored(_images())), to_numpy(model(_images())))
    aux = restored.with_all_outputs()(_images())["aux"]
    np.testing.assert_array_equal(
        to_numpy(aux), to_numpy(model.with_all_outputs()(_images())["aux"])
    )


def test_a_fine_tune_records_its_own_run_not_its_parents(tmp_path):
    # The bundled demo's record: its training script, 4800 steps, held-out scenes, mIoU.
    from keras_danet.presets.preset import record_to_save
    from keras_danet.presets.table import bundled_preset_folder

    with open(os.path.join(bundled_preset_folder("danet_demo_shapes"), "metadata.json")) as file:
        parent = json.load(file)
    assert parent["training"]["steps"] == 4800 and "held_out" in parent and parent["miou"]
    run = {"steps": 30, "optimizer": "TorchSGD", "final_loss": 0.4}
    record = record_to_save(parent, tmp_path / "cracks", {"dataset": "cracks"}, run)
    assert record["training"] == run and record["pretrained"] == "danet_demo_shapes"
    assert not {"held_out", "miou", "metrics", "description"} & set(record)
    # Not trained since loading, saved under a new name: the same weights, same training.
    copy = record_to_save(parent, tmp_path / "copy", {})
    assert copy["training"] == parent["training"] and "miou" not in copy
    # Trained on and saved under the same name: the release's identity goes too.
    again = record_to_save(parent, tmp_path / "danet_demo_shapes", {}, run)
    assert again["preset"] == again["pretrained"] == "danet_demo_shapes"
    assert again["training"] == run and not {"description", "miou", "held_out"} & set(again)


def test_a_compiled_preset_keeps_the_recipe_but_not_the_machine_settings(tmp_path):
    model = _tiny_model()
    model.compile(learning_rate=0.02, steps_per_execution=2)
    model.jit_compile = True  # as JAX resolves "auto"; on PyTorch it would mean torch.compile
    folder = model.save_to_preset(tmp_path / "preset")
    compile_config = json.loads(pathlib.Path(folder, "config.json").read_text())["compile_config"]
    assert not {"jit_compile", "run_eagerly", "steps_per_execution"} & set(compile_config)
    restored = DANet.from_preset(folder)
    fresh = _tiny_model()
    fresh.compile()
    assert restored.jit_compile == fresh.jit_compile and restored.steps_per_execution == 1
    schedule = restored.optimizer._learning_rate
    assert schedule.initial_learning_rate == pytest.approx(0.02)
    # Default permissions, not the private ones of the temporary folder it was written in.
    umask = os.umask(0o022)
    os.umask(umask)
    assert os.stat(folder).st_mode & 0o777 == 0o777 & ~umask


@pytest.mark.parametrize("num_classes", [None, 3])
def test_from_preset_always_comes_compiled_for_a_new_run(tmp_path, num_classes):
    plain = _tiny_model().save_to_preset(tmp_path / "plain")  # saved uncompiled
    trained = _tiny_model()
    trained.compile(learning_rate=0.02, max_iterations=500, metrics=["mIoU", "mDice"])
    recipe = trained.save_to_preset(tmp_path / "trained")
    images, labels = _images().repeat(2, 0), np.zeros((2, 40, 48), "int32")
    for folder, rate, metrics in ((plain, 0.01, 1), (recipe, 0.02, 2)):
        model = DANet.from_preset(folder, num_classes=num_classes)
        assert model.compiled and isinstance(model.optimizer, TorchSGD), folder
        assert not model.optimizer.built  # no optimizer state until the first step
        schedule = poly_schedule_of(model.optimizer)
        # The saved horizon (500 steps) was the finished run's: fit sets this run's.
        assert schedule.initial_learning_rate == pytest.approx(rate)
        assert schedule.decay_steps is None
        counted = [m["config"]["num_classes"] for m in model.get_compile_config()["metrics"]]
        assert counted == [num_classes or 5] * metrics  # mIoU (and mDice) count these classes
        with pytest.raises(StopAtTrainBegin.Stopped):
            model.fit(images, labels, batch_size=1, epochs=3, callbacks=[StopAtTrainBegin()])
        assert schedule.decay_steps == horizon_for(3 * 2)


def test_a_models_preset_is_the_typed_view_of_its_metadata(tmp_path):
    model = _tiny_model()
    names = ["sky", "road", "grass", "object", "crack"]
    model.preset_metadata.update(
        dataset="cracks",
        class_names=names,
        palette=[[i, 2 * i, 3 * i] for i in range(5)],
        test_mode="slide",
        slide_crop=[32, 32],
        slide_stride=[16, 16],
        test_scale=[96, 64],
        metrics={"mIoU": 50.0},
    )
    preset = model.preset
    assert (preset.architecture, preset.num_classes, preset.depth) == ("DANet", 5, model.depth)
    assert preset.dataset.class_names == tuple(names) and preset.dataset.palette[4] == (4, 8, 12)
    assert preset.test == TestSettings("slide", (32, 32), (16, 16), (96, 64))
    assert preset.metrics["mIoU"] == 50.0 and preset.source is None
    # Inference reads it: the preset's settings, each overridable.
    assert TestSettings.of(model) == preset.test
    assert TestSettings.of(model, mode="whole") == TestSettings("whole", scale=(96, 64))
    # The folder's record is the same record.
    saved = Preset.from_folder(model.save_to_preset(tmp_path / "cracks"))
    assert (saved.test, saved.dataset.class_names) == (preset.test, preset.dataset.class_names)
    del model.preset_metadata["slide_crop"]
    with pytest.raises(PresetError, match="preset_metadata: its test settings are wrong"):
        model.preset  # noqa: B018  (the property is the test)


def test_saving_again_replaces_the_folder_and_leaves_no_temporary_files(tmp_path):
    first, second = _tiny_model(), _tiny_model()
    first.save_to_preset(tmp_path / "preset")
    second.save_to_preset(tmp_path / "preset")
    assert os.listdir(tmp_path) == ["preset"]
    restored = DANet.from_preset(tmp_path / "preset")
    np.testing.assert_array_equal(to_numpy(restored(_images())), to_numpy(second(_images())))


@pytest.mark.parametrize("damage", ["truncate", "tamper"])
def test_damaged_weights_are_refused(tmp_path, damage):
    folder = _tiny_model().save_to_preset(tmp_path / "preset")
    weights = pathlib.Path(folder, "model.weights.h5")
    data = weights.read_bytes()
    if damage == "truncate":
        data = data[: len(data) // 2]
    else:  # flip the bits of 16 bytes in the middle, where the weights are
        middle = len(data) // 2
        data = (
            data[:middle]
            + bytes(b ^ 0xFF for b in data[middle : middle + 16])
            + data[middle + 16 :]
        )
    weights.write_bytes(data)
    with pytest.raises(PresetError, match="weights.h5 has sha256 .* truncated or was modified"):
        DANet.from_preset(folder)


def _record_hash(folder, key, path):
    metadata_path = pathlib.Path(folder, "metadata.json")
    metadata = json.loads(metadata_path.read_text())
    metadata[key] = sha256_file(path)
    metadata_path.write_text(json.dumps(metadata))


def test_config_naming_another_class_is_refused(tmp_path):
    folder = _tiny_model().save_to_preset(tmp_path / "preset")
    path = pathlib.Path(folder, "config.json")
    config = json.loads(path.read_text())
    config.update(module="os", class_name="system", registered_name="os>system")
    path.write_text(json.dumps(config))
    _record_hash(folder, "config_sha256", path)  # as an attacker's Hub repo would
    with pytest.raises(
        PresetError, match="only keras_danet>DANet, keras_danet>ResNetV1c may be built"
    ):
        DANet.from_preset(folder)


def test_weights_of_another_architecture_are_refused(tmp_path):
    small = _tiny_model().save_to_preset(tmp_path / "small")
    other = DANet(num_classes=5, **{**TINY, "head_channels": 8}).save_to_preset(tmp_path / "other")
    # Keep the checksum honest so that only the architecture check can catch it.
    os.replace(os.path.join(other, "model.weights.h5"), os.path.join(small, "model.weights.h5"))
    os.replace(os.path.join(other, "metadata.json"), os.path.join(small, "metadata.json"))
    _record_hash(small, "config_sha256", os.path.join(small, "config.json"))
    with pytest.raises(PresetError, match="does not fit the model of"):
        DANet.from_preset(small)


def test_incomplete_folder_and_missing_path(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(PresetError, match="not a complete preset folder"):
        DANet.from_preset(str(tmp_path / "empty"))
    with pytest.raises(PresetError, match="No preset folder at"):
        DANet.from_preset(str(tmp_path / "nowhere"))
    with pytest.raises(PresetError, match="write hf://someone/danet"):
        DANet.from_preset("someone/danet")


def test_fine_tuned_model_loads_with_keras_load_model(tmp_path):
    folder = _tiny_model().save_to_preset(tmp_path / "preset")
    model = DANet.from_preset(folder, num_classes=3)
    path = str(tmp_path / "fine_tuned.keras")
    model.save(path)
    restored = keras.saving.load_model(path)
    assert isinstance(restored, DANet) and restored.num_classes == 3
    np.testing.assert_array_equal(to_numpy(restored(_images())), to_numpy(model(_images())))
