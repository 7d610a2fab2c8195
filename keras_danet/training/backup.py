"""`BackupAndRestore` that survives a kill at any moment and deletes only its own files."""

import contextlib
import json
import os

import keras

from keras_danet import distributed
from keras_danet.atomic_files import atomic_write_path


class BackupAndRestore(keras.callbacks.BackupAndRestore):
    """Keras' `BackupAndRestore`, safe to kill while it writes and to point at any folder.

    The same arguments and the same resume: after a crash, running the same `fit` again
    restores the weights, the optimizer state (momentum buffers, iteration count, and so the
    point of the poly schedule) and the epoch of the last backup (under `torchrun`, in every
    process; rank 0 alone writes and deletes the backup). Two differences:
    - each backup file is written under a temporary name and renamed into place, so a kill
      during a backup leaves the previous backup whole (Keras writes `latest.weights.h5` in
      place: a kill mid-write leaves a file that every later `fit` fails to open);
    - when training ends, only its own files are deleted, and the folder if it is then
      empty (Keras deletes the whole `backup_dir`, whatever else it holds).

    Example:
    >>> backup = keras_danet.training.BackupAndRestore("runs/backup", save_freq=500)
    >>> model.fit(train, epochs=40, callbacks=[backup])   # rerun the same line after a crash
    """

    def on_train_begin(self, logs=None):
        # Under torchrun, rank 0 may still be writing the last backup of an earlier fit.
        distributed.barrier()
        super().on_train_begin(logs)

    def _save_model(self):
        # Under torchrun, rank 0 writes for all; if it fails, every process stops with it.
        distributed.run_on_main_process(self._write_backup)

    def _write_backup(self):
        # Weights first: metadata.json only ever names an epoch whose weights are on disk.
        with atomic_write_path(self._weights_path, suffix=".weights.h5") as partial:
            self.model.save_weights(partial, overwrite=True)
        record = {"epoch": self._current_epoch, "batch": self._last_batch_seen}
        with atomic_write_path(self._training_metadata_path) as partial, open(partial, "w") as file:
            json.dump(record, file)

    def _load_model(self):
        try:
            super()._load_model()
        except (OSError, ValueError) as error:
            raise OSError(
                f"The backup in {self.backup_dir} cannot be read ({error}). It was not "
                "written by keras_danet.training.BackupAndRestore or was damaged: delete "
                "the folder to train from the start."
            ) from error

    def on_train_end(self, logs=None):
        if not self.delete_checkpoint or not distributed.is_main_process():
            return
        own = {
            os.path.basename(path)
            for path in (
                self._weights_path,
                self._training_metadata_path,
                self._prev_weights_path,
                self._prev_training_metadata_path,
            )
        }
        # Its files, and the temporary files of a backup that was killed while written.
        partial = tuple(f".{name}." for name in own)
        for name in os.listdir(self.backup_dir) if os.path.isdir(self.backup_dir) else ():
            if name in own or (name.startswith(partial) and ".partial" in name):
                with contextlib.suppress(FileNotFoundError):
                    os.remove(os.path.join(self.backup_dir, name))
        with contextlib.suppress(OSError):  # not empty: the user's files stay
            os.rmdir(self.backup_dir)
