"""Writers never destroy what they did not write; an interrupted save is never a good preset.

The data-loss case that started this suite: `save_to_preset(os.environ.get("OUT_DIR", ""))`
in a project folder replaced the current directory with a preset folder.
"""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from keras_danet import DANet, PresetError
from keras_danet.presets.files import sha256_file
from keras_danet.presets.saving import STALE_PARTIAL_SECONDS
from tests.conftest import TINY, to_numpy
from tests.helpers import mounted_tmpfs
from tests.presets.conftest import REPOSITORY

PRESET = ["config.json", "metadata.json", "model.weights.h5"]


@pytest.fixture(scope="module")
def model():
    return DANet(num_classes=3, **TINY)


def _project(root):
    """A user's project folder: code and data that no writer may touch."""
    (root / "src").mkdir(parents=True)
    (root / "src" / "train.py").write_text("print('mine')\n")
    (root / "notes.txt").write_text("keep me\n")
    return {"src/train.py": "print('mine')\n", "notes.txt": "keep me\n"}


def _assert_intact(root, files):
    for name, text in files.items():
        assert (root / name).read_text() == text, f"{name} was changed or deleted"


@pytest.mark.parametrize("path", ["", "   "])
def test_a_blank_path_is_an_error_and_the_current_folder_survives(
    model, tmp_path, monkeypatch, path
):
    files = _project(tmp_path)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="the output path is empty"):
        model.save_to_preset(path)
    _assert_intact(tmp_path, files)
    assert sorted(os.listdir(tmp_path)) == ["notes.txt", "src"]


def test_a_folder_of_the_users_is_refused_and_left_alone(model, tmp_path, monkeypatch):
    files = _project(tmp_path)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(PresetError, match=r"holds notes.txt, src\. A preset is never saved over"):
        model.save_to_preset(".")
    _assert_intact(tmp_path, files)
    assert sorted(os.listdir(tmp_path)) == ["notes.txt", "src"]


def test_overwrite_writes_the_preset_files_beside_the_users(model, tmp_path):
    files = _project(tmp_path)
    folder = model.save_to_preset(tmp_path, overwrite=True)
    _assert_intact(tmp_path, files)
    assert sorted(os.listdir(tmp_path)) == sorted(["notes.txt", "src", *PRESET])
    assert DANet.from_preset(folder).num_classes == 3


def test_an_earlier_preset_is_replaced_and_its_model_card_kept(model, tmp_path):
    first = DANet(num_classes=3, **TINY)
    first.save_to_preset(tmp_path / "preset")
    (tmp_path / "preset" / "README.md").write_text("card")
    model.save_to_preset(tmp_path / "preset")
    assert sorted(os.listdir(tmp_path / "preset")) == sorted([*PRESET, "README.md"])
    assert os.listdir(tmp_path) == ["preset"]  # no staging folder left
    images = np.random.default_rng(0).uniform(0, 255, (1, 24, 32, 3)).astype("float32")
    restored = DANet.from_preset(tmp_path / "preset")
    np.testing.assert_array_equal(to_numpy(restored(images)), to_numpy(model(images)))


def test_a_file_in_the_way_is_an_error(model, tmp_path):
    (tmp_path / "preset").write_text("a file")
    with pytest.raises(PresetError, match="exists and is not a folder"):
        model.save_to_preset(tmp_path / "preset")
    assert (tmp_path / "preset").read_text() == "a file"


def test_home_is_expanded(model, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    folder = model.save_to_preset("~/presets/mine")
    assert folder == str(tmp_path / "presets" / "mine")
    assert sorted(os.listdir(folder)) == PRESET


def test_a_stale_staging_folder_of_a_dead_save_is_removed(model, tmp_path):
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    stale = tmp_path / f".preset.partial-{dead.stdout.strip()}-abc"
    stale.mkdir()
    (stale / "config.json").write_text("{}")
    past = time.time() - STALE_PARTIAL_SECONDS - 10
    os.utime(stale, (past, past))
    recent = tmp_path / f".preset.partial-{dead.stdout.strip()}-def"  # could be in progress
    recent.mkdir()
    model.save_to_preset(tmp_path / "preset")
    assert sorted(os.listdir(tmp_path)) == [recent.name, "preset"]


# A child saves a preset over an earlier one (in a folder that also holds the user's files,
# so the save goes file by file) and is killed with SIGKILL at one point of the write:
# 0: in the middle of the weights file; k: instead of the k-th file-system move of the save
# (1 the folder rename that fails on a non-empty folder, 2 weights, 3 config, 4 metadata.json,
# 5 removing the emptied staging folder).
KILLED_SAVE = """
import os, signal, sys
import h5py, keras
import keras_danet
from tests.conftest import TINY

folder, kill_at = sys.argv[1], int(sys.argv[2])
keras.utils.set_random_seed(1)
model = keras_danet.DANet(num_classes=3, **TINY)
model.get_layer("pam").gamma.assign(0.5)
moves = []


def dying(real):
    def move(*args, **kwargs):
        moves.append(args)
        if len(moves) == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        return real(*args, **kwargs)
    return move


os.replace, os.rename, os.rmdir = dying(os.replace), dying(os.rename), dying(os.rmdir)
datasets = []
create_dataset = h5py.Group.create_dataset


def dying_dataset(self, *args, **kwargs):
    datasets.append(args)
    if kill_at == 0 and len(datasets) == 40:
        os.kill(os.getpid(), signal.SIGKILL)
    return create_dataset(self, *args, **kwargs)


h5py.Group.create_dataset = dying_dataset
model.save_to_preset(folder, overwrite=True)
print("saved")
"""


@pytest.mark.parametrize("kill_at", [0, 3, 5])
@pytest.mark.one_backend
def test_a_save_killed_at_any_point_never_loads_as_a_good_preset(model, tmp_path, kill_at):
    """The three outcomes: killed before any move (the old preset, whole), between moves
    (a mix, refused by the hashes of metadata.json), after the last move (the new one)."""
    project = tmp_path / "project"
    files = _project(project)
    old = DANet(num_classes=3, **TINY)
    old.save_to_preset(project, overwrite=True)
    script = tmp_path / "killed_save.py"
    script.write_text(KILLED_SAVE)
    child = subprocess.run(
        [sys.executable, str(script), str(project), str(kill_at)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPOSITORY,
        env=dict(os.environ, PYTHONPATH=REPOSITORY),
    )
    assert child.returncode == -signal.SIGKILL, child.stderr[-2000:]
    _assert_intact(project, files)
    images = np.random.default_rng(0).uniform(0, 255, (1, 24, 32, 3)).astype("float32")
    if kill_at == 3:  # new weights beside the old metadata.json
        with pytest.raises(PresetError, match="a save was interrupted"):
            DANet.from_preset(project)
    else:
        loaded = DANet.from_preset(project)
        got = to_numpy(loaded(images))
        if kill_at == 0:
            np.testing.assert_array_equal(got, to_numpy(old(images)))
        else:
            assert float(to_numpy(loaded.get_layer("pam").gamma)) == 0.5  # the new one
    # Saving again repairs the folder. The killed save's staging folder stays until it is
    # stale (its process is gone, but it is younger than STALE_PARTIAL_SECONDS).
    model.save_to_preset(project, overwrite=True)
    assert DANet.from_preset(project).num_classes == 3
    leftovers = [name for name in os.listdir(tmp_path) if ".partial-" in name]
    assert len(leftovers) <= 1
    for name in leftovers:
        assert set(os.listdir(tmp_path / name)) <= set(PRESET)


@pytest.mark.one_backend
def test_two_processes_saving_one_preset_leave_one_whole_preset(tmp_path):
    code = textwrap.dedent(
        """
        import sys, keras, keras_danet
        from tests.conftest import TINY
        keras.utils.set_random_seed(int(sys.argv[2]))
        model = keras_danet.DANet(num_classes=3, **TINY)
        for _ in range(3):
            model.save_to_preset(sys.argv[1])
        """
    )
    children = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(tmp_path / "preset"), str(seed)],
            cwd=REPOSITORY,
            env=dict(os.environ, PYTHONPATH=REPOSITORY),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for seed in (1, 2)
    ]
    for child in children:
        _, err = child.communicate(timeout=600)
        assert child.returncode == 0, err[-2000:]
    assert DANet.from_preset(tmp_path / "preset").num_classes == 3
    assert os.listdir(tmp_path) == ["preset"]


RESAVER = """
import sys, keras, keras_danet
from tests.conftest import TINY
model = keras_danet.DANet(num_classes=3, **TINY)
for version in range(1, int(sys.argv[2]) + 1):
    model.get_layer("pam").gamma.assign(float(version))  # which save a reader got
    model.save_to_preset(sys.argv[1], metadata={"version": version})
print("done", flush=True)
"""


@pytest.mark.one_backend
def test_a_reader_polling_a_preset_that_is_re_saved_always_gets_a_whole_one(tmp_path):
    """One process re-saves a preset over and over while this one loads it in a loop: every
    load succeeds and gets one save's weights with that save's metadata, never a gap or a
    mix (the probe found both)."""
    folder = tmp_path / "preset"
    first = DANet(num_classes=3, **TINY)
    first.get_layer("pam").gamma.assign(0.0)
    first.save_to_preset(folder, metadata={"version": 0})
    saves = 12  # each load takes about as long as a save: a dozen overlaps
    child = subprocess.Popen(
        [sys.executable, "-c", RESAVER, str(folder), str(saves)],
        cwd=REPOSITORY,
        env=dict(os.environ, PYTHONPATH=REPOSITORY),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen = []
    try:
        while child.poll() is None:
            loaded = DANet.from_preset(folder)
            version = float(to_numpy(loaded.get_layer("pam").gamma))
            # The weights and the metadata.json that vouched for them come from one save.
            assert loaded.preset_metadata["version"] == version, (len(seen), version)
            seen.append(version)
    finally:
        out, err = child.communicate(timeout=600)
    assert child.returncode == 0 and "done" in out, err[-2000:]
    assert all(value.is_integer() and 0 <= value <= saves for value in seen), seen
    assert len(set(seen)) >= 2, f"the loads did not overlap the saves: {seen}"
    assert float(to_numpy(DANet.from_preset(folder).get_layer("pam").gamma)) == saves
    assert os.listdir(tmp_path) == ["preset"]


def test_a_full_disk_is_a_clear_error_and_leaves_nothing(model, tmp_path):
    with mounted_tmpfs(tmp_path, "size=300k"):  # too small for the weights
        with pytest.raises(OSError, match="Not enough free disk space for the preset"):
            model.save_to_preset(tmp_path / "preset")
        assert os.listdir(tmp_path) == []


def test_a_read_only_folder_is_a_clear_error(model, tmp_path):
    with mounted_tmpfs(tmp_path, "ro,size=1m"):
        with pytest.raises(OSError, match="Read-only file system"):
            model.save_to_preset(tmp_path / "preset")
        assert os.listdir(tmp_path) == []


def test_damaged_config_or_metadata_of_a_cached_preset_is_deleted(tmp_path):
    """Both are deleted whatever part is damaged; a preset the user owns is only reported."""
    from keras_danet.presets.loading import load_preset_folder

    for damaged in ("config.json", "metadata.json"):
        folder = DANet(num_classes=3, **TINY).save_to_preset(tmp_path / damaged)
        with open(os.path.join(folder, damaged), "a") as file:
            file.write("garbage")
        with pytest.raises(PresetError, match=damaged):
            DANet.from_preset(folder)  # the user's folder: reported, kept
        assert sorted(os.listdir(folder)) == PRESET
        with pytest.raises(PresetError, match="The cached copy was deleted"):
            load_preset_folder(folder, discard_if_corrupt=True)
        assert not os.path.exists(folder)


def test_metadata_that_is_not_a_record_is_refused(tmp_path):
    folder = DANet(num_classes=3, **TINY).save_to_preset(tmp_path / "preset")
    with open(os.path.join(folder, "metadata.json"), "w") as file:
        json.dump([1, 2], file)
    with pytest.raises(PresetError, match="metadata.json holds list, not a record"):
        DANet.from_preset(folder)


def test_a_lambda_in_config_json_is_never_run(tmp_path):
    import keras

    marker = tmp_path / "ran"
    where = str(marker)
    layer = keras.layers.Lambda(lambda x: open(where, "w") and x)  # noqa: SIM115
    payload = keras.saving.serialize_keras_object(layer)
    folder = DANet(num_classes=3, **TINY).save_to_preset(tmp_path / "preset")
    config_path = os.path.join(folder, "config.json")
    for config in (payload, None):  # the whole config, then hidden in an argument
        if config is None:
            with open(config_path) as file:
                config = json.load(file)
            config["config"]["mean"] = payload
        with open(config_path, "w") as file:
            json.dump(config, file)
        metadata_path = os.path.join(folder, "metadata.json")
        with open(metadata_path) as file:
            metadata = json.load(file)
        metadata["config_sha256"] = sha256_file(config_path)  # as an attacker would
        with open(metadata_path, "w") as file:
            json.dump(metadata, file)
        with pytest.raises(PresetError, match="only keras_danet>DANet|does not build a model"):
            DANet.from_preset(folder)
        assert not marker.exists()


@pytest.mark.parametrize("handle", ["../../../../../../etc", "hf://../../etc/passwd", "a/../../b"])
def test_path_traversal_in_a_preset_name_reads_nothing_else(handle, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(PresetError):
        DANet.from_preset(handle)


# Provenance, not names: a file that only carries a preset file's name is the user's.
def _user_weights(path):
    import keras

    keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]).save_weights(path)


@pytest.mark.parametrize("overwrite", [False, True])
@pytest.mark.parametrize(
    "files",
    [("config.json",), ("model.weights.h5",), ("metadata.json",), ("config.json", "notes.txt")],
)
def test_a_file_that_only_has_a_preset_files_name_is_never_replaced(
    model, tmp_path, files, overwrite
):
    folder = tmp_path / "mine"
    folder.mkdir()
    for name in files:
        if name.endswith(".h5"):
            _user_weights(folder / name)
        else:
            (folder / name).write_text('{"mine": true}\n')
    before = {name: (folder / name).read_bytes() for name in files}
    with pytest.raises(PresetError) as error:
        model.save_to_preset(folder, overwrite=overwrite)
    message = str(error.value)
    ours = [name for name in files if name != "notes.txt"]
    assert str(folder) in message and all(name in message for name in ours)
    assert "even with overwrite=True" in message
    assert {name: (folder / name).read_bytes() for name in files} == before
    assert sorted(os.listdir(tmp_path)) == ["mine"]  # no staging folder left either


def test_a_preset_whose_files_changed_since_the_save_is_not_replaced(model, tmp_path):
    folder = model.save_to_preset(tmp_path / "preset")
    config = tmp_path / "preset" / "config.json"
    edited = config.read_text().replace('"num_classes": 3', '"num_classes": 3 ')
    assert edited != config.read_text()
    config.write_text(edited)  # the user edited it by hand: it is theirs now
    with pytest.raises(PresetError, match=r"config.json \(its sha256 is not the one"):
        model.save_to_preset(folder, overwrite=True)
    assert config.read_text() == edited


def test_a_metadata_json_of_another_tool_makes_the_folder_the_users(model, tmp_path):
    folder = tmp_path / "hub_preset"
    DANet(num_classes=3, **TINY).save_to_preset(folder)
    record = json.loads((folder / "metadata.json").read_text())
    del record["keras_danet_version"]  # keras-hub's metadata.json has no such field
    (folder / "metadata.json").write_text(json.dumps(record))
    with pytest.raises(PresetError, match="metadata.json .not a metadata.json that keras-danet"):
        model.save_to_preset(folder)


def test_a_lone_readme_is_the_users(model, tmp_path):
    (tmp_path / "README.md").write_text("my project")
    with pytest.raises(PresetError, match="holds README.md"):
        model.save_to_preset(tmp_path)
    model.save_to_preset(tmp_path, overwrite=True)
    assert (tmp_path / "README.md").read_text() == "my project"


def test_our_own_preset_is_replaced_with_or_without_overwrite(model, tmp_path):
    folder = DANet(num_classes=3, **TINY).save_to_preset(tmp_path / "preset")
    model.save_to_preset(folder)
    model.save_to_preset(folder, overwrite=True)
    record = json.loads((tmp_path / "preset" / "metadata.json").read_text())
    assert record["weights_sha256"] == sha256_file(os.path.join(folder, "model.weights.h5"))


def _edit_preset(folder, config_edit=None, metadata_edit=None):
    """Edits config.json and metadata.json as a hand would, keeping the hashes consistent so
    that the check under test is the one that answers."""
    config_path, metadata_path = (os.path.join(folder, n) for n in ("config.json", "metadata.json"))
    with open(config_path) as file:
        config = json.load(file)
    if config_edit:
        config_edit(config)
    with open(config_path, "w") as file:
        json.dump(config, file)
    with open(metadata_path) as file:
        metadata = json.load(file)
    metadata["config_sha256"] = sha256_file(config_path)
    if metadata_edit:
        metadata_edit(metadata)
    with open(metadata_path, "w") as file:
        json.dump(metadata, file)


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda c: c.pop("config"), r"config.json has no 'config' field with the model's argu"),
        (lambda c: c["config"].update(colour="red"), r"arguments it does not take: \['colour'\]"),
        (lambda c: c.update(extra=1), r"has fields that no keras-danet save writes: \['extra'\]"),
        (
            lambda c: c.update(
                compile_config={"optimizer": {"class_name": "Nothing", "config": {}}}
            ),
            r"recipe saved in its config.json \(compile_config\) cannot be compiled",
        ),
        (
            lambda c: c.update(compile_config=["not", "a", "recipe"]),
            r"recipe saved in its config.json \(compile_config\) cannot be compiled",
        ),
    ],
    ids=[
        "no_config_field",
        "unknown_argument",
        "unknown_field",
        "unknown_optimizer",
        "not_a_recipe",
    ],
)
def test_a_config_json_edited_by_hand_names_the_field(tmp_path, edit, message):
    folder = DANet(num_classes=3, **TINY).save_to_preset(tmp_path / "preset")
    _edit_preset(folder, config_edit=edit)
    with pytest.raises(PresetError, match=message):
        DANet.from_preset(folder)


def test_metadata_without_the_weights_hash_says_so(tmp_path):
    folder = DANet(num_classes=3, **TINY).save_to_preset(tmp_path / "preset")
    _edit_preset(folder, metadata_edit=lambda m: m.pop("weights_sha256"))
    with pytest.raises(PresetError, match="metadata.json has no weights_sha256 field"):
        DANet.from_preset(folder)
