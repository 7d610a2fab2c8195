"""`keras.callbacks.BackupAndRestore` brings a killed `fit` back where its last backup was.

A child process trains with backups every 3 steps and is killed with SIGKILL in the middle
of its second epoch; a second child restarts the same `fit`. The state it resumes from must
equal the state at the last backup exactly: iteration count, learning rate (the poly
schedule's position), optimizer buffers and weights.
"""

import json
import signal

import numpy as np
import pytest

from tests.presets.conftest import run_python

BACKUP_EVERY = 3
KILL_AT = 7  # global step; the last backup before it is at step 6, in epoch 2

TRAINING = """
import json, os, signal, sys
import keras, numpy as np
import keras_danet
from tests.conftest import TINY

backup, records, kill_at = sys.argv[1], sys.argv[2], int(sys.argv[3])
keras.utils.set_random_seed(0)
rng = np.random.default_rng(0)
images = rng.uniform(0, 255, size=(8, 32, 40, 3)).astype("float32")
labels = rng.integers(0, 4, size=(8, 32, 40)).astype("uint8")
model = keras_danet.DANet(num_classes=4, dropout=0.0, **TINY)
# Resuming is what is tested, not graph tracing (a minute of it on TensorFlow).
model.compile(run_eagerly=keras.backend.backend() == "tensorflow")


def state():
    optimizer = model.optimizer
    arrays = {f"optimizer_{i}": keras.ops.convert_to_numpy(v)
              for i, v in enumerate(optimizer.variables)}
    arrays.update({f"weight_{i}": keras.ops.convert_to_numpy(v)
                   for i, v in enumerate(model.weights)})
    arrays["learning_rate"] = keras.ops.convert_to_numpy(optimizer.learning_rate)
    arrays["iterations"] = keras.ops.convert_to_numpy(optimizer.iterations)
    return arrays


class Record(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        np.savez(os.path.join(records, "resumed.npz"), **state())
        with open(os.path.join(records, "resumed.json"), "w") as file:
            json.dump({"initial_epoch": self.model._initial_epoch}, file)

    def on_train_batch_end(self, batch, logs=None):
        step = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
        if step % EVERY == 0:  # BackupAndRestore has just written this state
            np.savez(os.path.join(records, f"step_{step}.npz"), **state())
        if step == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)


history = model.fit(
    images, labels, batch_size=2, epochs=3, shuffle=False, verbose=0,
    callbacks=[keras.callbacks.BackupAndRestore(backup, save_freq=EVERY), Record()],
)
with open(os.path.join(records, "finished.json"), "w") as file:
    json.dump({"epochs_run": len(history.history["loss"]),
               "iterations": int(keras.ops.convert_to_numpy(model.optimizer.iterations))}, file)
""".replace("EVERY", str(BACKUP_EVERY))


def _run(tmp_path, kill_at):
    script = tmp_path / "train.py"
    script.write_text(TRAINING)
    code = (
        "import runpy, sys\n"
        f"sys.argv = ['train.py', {str(tmp_path / 'backup')!r}, {str(tmp_path)!r}, "
        f"'{kill_at}']\n"
        f"runpy.run_path({str(script)!r}, run_name='__main__')\n"
    )
    return run_python(code)


def test_a_killed_fit_resumes_from_its_last_backup(tmp_path):
    killed = _run(tmp_path, KILL_AT)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert not (tmp_path / "finished.json").exists()
    backup = np.load(tmp_path / "step_6.npz")
    assert int(backup["iterations"]) == 6

    resumed = _run(tmp_path, kill_at=-1)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    state = np.load(tmp_path / "resumed.npz")
    assert sorted(state.files) == sorted(backup.files)
    for name in backup.files:  # iterations, learning rate, buffers, weights: all of it
        np.testing.assert_array_equal(state[name], backup[name], err_msg=name)
    assert float(state["learning_rate"]) < 0.01  # mid-schedule, not restarted
    with open(tmp_path / "resumed.json") as file:
        assert json.load(file)["initial_epoch"] == 1  # the epoch the backup was taken in
    with open(tmp_path / "finished.json") as file:
        finished = json.load(file)
    # Keras restarts the interrupted epoch at its first batch: epochs 2 and 3 run in full.
    assert finished == {"epochs_run": 2, "iterations": 6 + 2 * 4}
    assert not (tmp_path / "backup").exists()  # deleted once training finished


@pytest.fixture(autouse=True)
def _isolated_caches(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
