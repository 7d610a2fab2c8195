"""Writing preset folders: config.json, model.weights.h5 and metadata.json (keras-hub's layout).

What a save may touch: the three preset files (and a previous preset's README.md model card
counts as a preset file when deciding whether a folder is a preset). Nothing else in the
folder is ever moved, replaced or deleted.
"""

import contextlib
import errno
import json
import math
import os
import shutil
import tempfile
import time

import keras
import numpy as np

from keras_danet.atomic_files import give_default_permissions, output_path
from keras_danet.presets.files import PresetError, sha256_file
from keras_danet.version import __version__

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.weights.h5"
METADATA_FILE = "metadata.json"
MODEL_CARD_FILE = "README.md"
# Everything a preset folder may hold; anything else in a folder belongs to the user.
PRESET_FILES = (CONFIG_FILE, WEIGHTS_FILE, METADATA_FILE, MODEL_CARD_FILE)
PRESET_FORMAT_VERSION = 1
# A staging folder left by a save that was killed is removed by a later save once its
# process is gone and it is older than this (a live save on another machine is younger).
STALE_PARTIAL_SECONDS = 300


def save_to_preset(model, directory, metadata=None, overwrite=False):
    """Writes `model` as a preset folder that `DANet.from_preset(directory)` loads.

    `directory` may be new, empty, or a previous preset (its preset files are replaced). A
    folder holding anything else is refused unless `overwrite=True`, and even then only the
    preset files are replaced: nothing else in it is touched.

    The files are written in a temporary folder beside `directory` and moved into place when
    complete, metadata.json last; it records the sha256 of the weights and of the config,
    which every load verifies, so a save interrupted at any moment never leaves a folder that
    loads as a good preset.

    Example:
    >>> model.save_to_preset("my_danet")
    >>> keras_danet.DANet.from_preset("my_danet")
    """
    directory = check_preset_target(directory, overwrite)
    parent = os.path.dirname(directory)
    os.makedirs(parent, exist_ok=True)
    _remove_stale_partials(parent, os.path.basename(directory))
    staging = tempfile.mkdtemp(
        prefix=f".{os.path.basename(directory)}.partial-{os.getpid()}-", dir=parent
    )
    try:
        _write_files(model, staging, metadata)
        _move_into_place(staging, directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return directory


# What names one published preset and the figures measured for its weights: a save under
# another name is another preset (a fine-tune), which keeps only where it started from.
_IDENTITY_KEYS = (
    "preset",
    "description",
    "source",
    "source_url",
    "source_sha256",
    "checkpoint_url",
    "checkpoint_sha256_prefix",
    "hub_repo",
    "hub_revision",
    "miou",
    "miou_ms_flip",
    "metrics",
)


def record_to_save(record, directory, metadata):
    """metadata.json's record for a model loaded with `record`, saved to `directory` with
    `metadata` added: under a new name, a new preset that keeps only where it started from."""
    record = dict(record)  # the model's own stays as it was
    loaded = record.get("preset")
    name = metadata.get("preset") or os.path.basename(os.path.normpath(os.fspath(directory)))
    if loaded and loaded != name:
        record = {k: v for k, v in record.items() if k not in _IDENTITY_KEYS}
        record.setdefault("pretrained", loaded)
        record["preset"] = name
    record.update(metadata)
    return record


def check_preset_target(directory, overwrite=False):
    """The absolute path of `directory` if a preset may be written there, else PresetError.

    Called by `save_to_preset`, and before long work (converting a checkpoint) by the CLI.
    """
    directory = output_path(directory, "save_to_preset")
    foreign = _foreign_entries(directory)
    if foreign and not overwrite:
        more = f" and {len(foreign) - 8} more" if len(foreign) > 8 else ""
        raise PresetError(
            f"{directory} is not empty and not a preset folder: it holds "
            f"{', '.join(foreign[:8])}{more}. A preset is never saved over files it did not "
            "write: choose a new or empty folder, or pass overwrite=True (--overwrite) to "
            "write the preset files there and leave the rest alone."
        )
    return directory


def _foreign_entries(directory):
    """What `directory` holds besides preset files; raises if it is not a folder."""
    if not os.path.lexists(directory):
        return []
    if not os.path.isdir(directory):
        raise PresetError(f"{directory} exists and is not a folder; a preset is a folder.")
    return sorted(set(os.listdir(directory)) - set(PRESET_FILES))


def _write_files(model, folder, metadata):
    # The model's own get_compile_config() leaves out how this machine ran the steps.
    config = keras.saving.serialize_keras_object(model)
    config_path = os.path.join(folder, CONFIG_FILE)
    with open(config_path, "w") as file:
        json.dump(config, file, indent=2)
    weights = os.path.join(folder, WEIGHTS_FILE)
    _check_free_space(model, folder)
    model.save_weights(weights)
    record = dict(metadata or {})
    if getattr(model, "num_classes", None) is not None:
        record["num_classes"] = model.num_classes
    record.update(
        format_version=PRESET_FORMAT_VERSION,
        keras_danet_version=__version__,
        keras_version=keras.__version__,
        parameter_count=model.count_params(),
        weights_sha256=sha256_file(weights),
        config_sha256=sha256_file(config_path),
    )
    with open(os.path.join(folder, METADATA_FILE), "w") as file:
        json.dump(record, file, indent=2)
    for name in (folder, *(os.path.join(folder, n) for n in os.listdir(folder))):
        give_default_permissions(name)


def _check_free_space(model, folder):
    """Refuses to start a weights file that cannot fit: HDF5 reports a full disk, but the
    file it leaves open then crashes the interpreter at exit (segmentation fault)."""
    payload = sum(math.prod(v.shape) * np.dtype(v.dtype).itemsize for v in model.weights)
    # HDF5 adds a few KB of headers per variable (about 1.2 MB for an R50's ~330).
    needed = payload + 6_144 * len(model.weights) + (1 << 18)
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise OSError(
            errno.ENOSPC,
            f"Not enough free disk space for the preset: about {needed / 1e6:.1f} MB needed, "
            f"{free / 1e6:.1f} MB free",
            os.path.dirname(folder),
        )


def _move_into_place(staging, directory):
    """A new folder: one rename, so it appears complete. An existing one: file by file,
    metadata.json last, so its hashes describe the files only once they are all there."""
    try:
        os.rename(staging, directory)  # replaces an empty folder too
        return
    except OSError:
        if not os.path.isdir(directory):
            raise
    for name in (WEIGHTS_FILE, CONFIG_FILE, METADATA_FILE):
        os.replace(os.path.join(staging, name), os.path.join(directory, name))
    os.rmdir(staging)


def _remove_stale_partials(parent, name):
    """Deletes staging folders of killed saves of `name`: process gone, folder not recent."""
    prefix = f".{name}.partial-"
    now = time.time()
    for entry in os.listdir(parent):
        if not entry.startswith(prefix):
            continue
        path = os.path.join(parent, entry)
        pid = entry[len(prefix) :].split("-", 1)[0]
        try:
            old = now - os.lstat(path).st_mtime > STALE_PARTIAL_SECONDS
        except OSError:
            continue
        if (
            old
            and pid.isdigit()
            and not _process_alive(int(pid))
            and os.path.isdir(path)
            and set(os.listdir(path)) <= set(PRESET_FILES)  # only ever our own files
        ):
            shutil.rmtree(path, ignore_errors=True)


def _process_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def discard_preset_folder(folder):
    """Deletes a damaged preset of our cache: its preset files, then the folder if empty."""
    for name in PRESET_FILES:
        with contextlib.suppress(FileNotFoundError):
            os.remove(os.path.join(folder, name))
    with contextlib.suppress(OSError):  # not empty: someone put other files there
        os.rmdir(folder)
