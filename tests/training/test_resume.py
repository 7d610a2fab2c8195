"""`keras_danet.training.BackupAndRestore` brings a stopped `fit` back where its last backup
was, also when a kill comes while a backup is being written.

Training with backups every 3 steps stops in the middle of its second epoch; the same `fit`
is run again. The state it resumes from must equal the state at the last backup exactly:
iteration count, learning rate (the poly schedule's position), optimizer buffers and
weights.

- In-process, on every backend: `fit` is interrupted by an exception (what the backend's
  trainer saves and restores: JAX's state held outside the variables, TensorFlow's and
  PyTorch's variables).
- In child processes killed with SIGKILL, after a backup or in the middle of writing one:
  marked `one_backend`, as what is tested there is the files a kill leaves behind (temporary
  names renamed into place, h5py interrupted), which is the same on every backend, and four
  fresh interpreters cost a minute and a half on each.
"""

import json
import os
import signal

import keras
import numpy as np
import pytest

import keras_danet
from tests.conftest import TINY
from tests.helpers import QUICK
from tests.presets.conftest import run_python

BACKUP_EVERY = 3
KILL_AT = 7  # global step; the last backup before it is at step 6, in epoch 2

TRAINING = """
import json, os, signal, sys
import keras, numpy as np
import keras_danet
from tests.conftest import TINY
from tests.training.test_resume import _state

backup, records, kill_at, during_backup = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
keras.utils.set_random_seed(0)
rng = np.random.default_rng(0)
images = rng.uniform(0, 255, size=(8, 32, 40, 3)).astype("float32")
labels = rng.integers(0, 4, size=(8, 32, 40)).astype("uint8")
model = keras_danet.DANet(num_classes=4, dropout=0.0, **TINY)
# Resuming is what is tested, not graph tracing (a minute of it on TensorFlow).
model.compile(run_eagerly=keras.backend.backend() == "tensorflow")


if during_backup == "yes":  # SIGKILL in the middle of the weights file of the step's backup
    import h5py
    create_dataset, written = h5py.Group.create_dataset, []

    def dying_dataset(self, *args, **kwargs):
        if int(keras.ops.convert_to_numpy(model.optimizer.iterations)) == kill_at:
            written.append(args)
            if len(written) == 40:
                os.kill(os.getpid(), signal.SIGKILL)
        return create_dataset(self, *args, **kwargs)

    h5py.Group.create_dataset = dying_dataset


class Record(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        np.savez(os.path.join(records, "resumed.npz"), **_state(model))
        with open(os.path.join(records, "resumed.json"), "w") as file:
            json.dump({"initial_epoch": self.model._initial_epoch}, file)

    def on_train_batch_end(self, batch, logs=None):
        step = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
        if step % EVERY == 0:  # BackupAndRestore has just written this state
            np.savez(os.path.join(records, f"step_{step}.npz"), **_state(model))
        if step == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)


history = model.fit(
    images, labels, batch_size=2, epochs=3, shuffle=False, verbose=0,
    callbacks=[keras_danet.training.BackupAndRestore(backup, save_freq=EVERY), Record()],
)
with open(os.path.join(records, "finished.json"), "w") as file:
    json.dump({"epochs_run": len(history.history["loss"]),
               "iterations": int(keras.ops.convert_to_numpy(model.optimizer.iterations))}, file)
""".replace("EVERY", str(BACKUP_EVERY))


def _run(tmp_path, kill_at, during_backup=False):
    script = tmp_path / "train.py"
    script.write_text(TRAINING)
    code = (
        "import runpy, sys\n"
        f"sys.argv = ['train.py', {str(tmp_path / 'backup')!r}, {str(tmp_path)!r}, "
        f"'{kill_at}', '{'yes' if during_backup else 'no'}']\n"
        f"runpy.run_path({str(script)!r}, run_name='__main__')\n"
    )
    return run_python(code)


class _Interrupted(Exception):
    pass


def _state(model):
    optimizer = model.optimizer
    arrays = {
        f"optimizer_{i}": keras.ops.convert_to_numpy(v) for i, v in enumerate(optimizer.variables)
    }
    arrays.update(
        {f"weight_{i}": keras.ops.convert_to_numpy(v) for i, v in enumerate(model.weights)}
    )
    arrays["learning_rate"] = keras.ops.convert_to_numpy(optimizer.learning_rate)
    arrays["iterations"] = keras.ops.convert_to_numpy(optimizer.iterations)
    return {name: np.array(value) for name, value in arrays.items()}


class _Record(keras.callbacks.Callback):
    """Keeps the state at each backup and at the start of training; raises at `stop_at`."""

    def __init__(self, stop_at=None):
        super().__init__()
        self.stop_at, self.backups, self.at_start = stop_at, {}, None

    def on_train_begin(self, logs=None):
        self.at_start = _state(self.model)
        self.initial_epoch = self.model._initial_epoch

    def on_train_batch_end(self, batch, logs=None):
        step = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
        if step % BACKUP_EVERY == 0:  # BackupAndRestore has just written this state
            self.backups[step] = _state(self.model)
        if step == self.stop_at:
            raise _Interrupted(step)


def test_an_interrupted_fit_resumes_from_its_last_backup(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, size=(8, 32, 40, 3)).astype("float32")
    labels = rng.integers(0, 4, size=(8, 32, 40)).astype("uint8")
    backup = str(tmp_path / "backup")

    def fit(model, record):
        model.compile(**QUICK)
        return model.fit(
            images,
            labels,
            batch_size=2,
            epochs=3,
            shuffle=False,
            verbose=0,
            callbacks=[
                keras_danet.training.BackupAndRestore(backup, save_freq=BACKUP_EVERY),
                record,
            ],
        )

    first = _Record(stop_at=KILL_AT)
    with pytest.raises(_Interrupted):
        fit(keras_danet.DANet(num_classes=4, dropout=0.0, **TINY), first)
    last = first.backups[6]
    assert int(last["iterations"]) == 6 and 9 not in first.backups

    keras.utils.set_random_seed(1)  # other initial weights: all of them must come back
    again = _Record()
    history = fit(keras_danet.DANet(num_classes=4, dropout=0.0, **TINY), again)
    assert sorted(again.at_start) == sorted(last)
    for name, value in last.items():
        np.testing.assert_array_equal(again.at_start[name], value, err_msg=name)
    assert float(again.at_start["learning_rate"]) < 0.01  # mid-schedule, not restarted
    assert again.initial_epoch == 1  # the epoch of step 6 (4 steps an epoch)
    # Keras restarts the interrupted epoch at its first batch: the rest run in full.
    assert len(history.history["loss"]) == 2
    assert int(keras.ops.convert_to_numpy(again.model.optimizer.iterations)) == 6 + 2 * 4
    assert not os.path.exists(backup)  # its own files deleted once training finished


@pytest.mark.one_backend
@pytest.mark.parametrize("during_backup", [False, True], ids=["after-a-backup", "in-a-backup"])
def test_a_killed_fit_resumes_from_its_last_backup(tmp_path, during_backup):
    # Killed at step 7 (last backup: step 6, epoch 2), or while writing step 6's backup
    # (last whole backup: step 3, epoch 1).
    killed = _run(tmp_path, 6 if during_backup else KILL_AT, during_backup)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert not (tmp_path / "finished.json").exists()
    last = 3 if during_backup else 6
    assert not (tmp_path / f"step_{last + BACKUP_EVERY}.npz").exists()
    backup = np.load(tmp_path / f"step_{last}.npz")
    assert int(backup["iterations"]) == last
    (tmp_path / "backup" / "notes.txt").write_text("the user's")  # survives the clean-up

    resumed = _run(tmp_path, kill_at=-1)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    state = np.load(tmp_path / "resumed.npz")
    assert sorted(state.files) == sorted(backup.files)
    for name in backup.files:  # iterations, learning rate, buffers, weights: all of it
        np.testing.assert_array_equal(state[name], backup[name], err_msg=name)
    assert float(state["learning_rate"]) < 0.01  # mid-schedule, not restarted
    epoch = last // 4  # 4 steps an epoch
    with open(tmp_path / "resumed.json") as file:
        assert json.load(file)["initial_epoch"] == epoch  # the epoch the backup was taken in
    with open(tmp_path / "finished.json") as file:
        finished = json.load(file)
    # Keras restarts the interrupted epoch at its first batch: the rest run in full.
    assert finished == {"epochs_run": 3 - epoch, "iterations": last + (3 - epoch) * 4}
    # Its own files deleted once training finished, nothing else.
    assert os.listdir(tmp_path / "backup") == ["notes.txt"]


@pytest.fixture(autouse=True)
def _isolated_caches(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
