"""Writing preset folders: config.json, model.weights.h5 and metadata.json (keras-hub's layout).

What a save may touch: the three preset files, and only where an earlier keras-danet save
wrote them (metadata.json records their sha256; a previous preset's README.md model card is
kept). Nothing else in the folder is ever moved, replaced or deleted.
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

from keras_danet import distributed
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

    `directory` may be new, empty, or a preset that keras-danet saved: its preset files are
    replaced if they are still the ones its metadata.json records. A config.json,
    model.weights.h5 or metadata.json that keras-danet did not write is never replaced, even
    with `overwrite=True`; other files make the folder the user's: refused unless
    `overwrite=True`, and left alone then.

    The files are written in a temporary folder beside `directory` and moved into place when
    complete, metadata.json last; it records the sha256 of the weights and of the config,
    which every load verifies, so a save interrupted at any moment never leaves a folder that
    loads as a good preset.

    Under `torchrun`, rank 0 writes the folder and every process returns once it is
    complete (the processes hold the same weights), or raises if rank 0 failed.

    Example:
    >>> model.save_to_preset("my_danet")
    >>> keras_danet.DANet.from_preset("my_danet")
    """
    # Every process returns once the folder is whole (a process that loads it next finds it
    # complete), or raises if rank 0 could not write it.
    saved = distributed.run_on_main_process(_save, model, directory, metadata, overwrite)
    return saved if distributed.is_main_process() else output_path(directory, "save_to_preset")


def _save(model, directory, metadata, overwrite):
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


def check_preset_target(directory, overwrite=False):
    """The absolute path of `directory` if a preset may be written there, else PresetError.

    A folder is ours to replace only where its metadata.json is a keras-danet record and the
    config.json and model.weights.h5 beside it still have the sha256 it records: a file that
    merely carries one of those names (the user's own config.json, Keras' default weights
    name) is never replaced, not even with `overwrite=True`. Other files make the folder the
    user's: refused unless `overwrite=True`, and left alone then.

    Called by `save_to_preset`, and before long work (converting a checkpoint) by the CLI.
    """
    directory = output_path(directory, "save_to_preset")
    if not os.path.lexists(directory):
        return directory
    if not os.path.isdir(directory):
        raise PresetError(f"{directory} exists and is not a folder; a preset is a folder.")
    entries = set(os.listdir(directory))
    not_ours = _files_we_did_not_write(directory, entries)
    if not_ours:
        listed = "; ".join(f"{name} ({why})" for name, why in not_ours)
        raise PresetError(
            f"{directory} holds {listed}. A save replaces only files that keras-danet wrote "
            "there, as recorded by the sha256 in its metadata.json, even with overwrite=True: "
            "move or rename these files, or choose a new or empty folder."
        )
    ours = set(PRESET_FILES)
    if METADATA_FILE not in entries:  # a README.md is a model card only beside our record
        ours.discard(MODEL_CARD_FILE)
    foreign = sorted(entries - ours)
    if foreign and not overwrite:
        more = f" and {len(foreign) - 8} more" if len(foreign) > 8 else ""
        raise PresetError(
            f"{directory} is not empty and not a preset folder: it holds "
            f"{', '.join(foreign[:8])}{more}. A preset is never saved over files it did not "
            "write: choose a new or empty folder, or pass overwrite=True (--overwrite) to "
            "write the preset files there and leave the rest alone."
        )
    return directory


def _files_we_did_not_write(directory, entries):
    """`[(name, why)]` for each file in `directory` that a save would replace but that no
    keras-danet save wrote: what a metadata.json of ours records decides, not the names.

    The records of a killed save's staging folder (`.NAME.partial-*` beside `directory`)
    count too: such a save may have moved some of its files in before it died, and saving
    again must be able to finish the job.
    """
    records = []
    metadata_path = os.path.join(directory, METADATA_FILE)
    if METADATA_FILE in entries:
        record = _our_record(metadata_path)
        if record is None:
            return [(METADATA_FILE, "not a metadata.json that keras-danet wrote")]
        records.append(record)
    records += _staged_records(directory)
    not_ours = []
    for name, key in ((CONFIG_FILE, "config_sha256"), (WEIGHTS_FILE, "weights_sha256")):
        if name not in entries:
            continue
        path = os.path.join(directory, name)
        if not os.path.isfile(path) or os.path.islink(path):
            not_ours.append((name, "not a regular file"))
        elif not records:
            not_ours.append((name, "no keras-danet metadata.json records it"))
        elif sha256_file(path) not in {record[key] for record in records}:
            not_ours.append((name, "its sha256 is not the one metadata.json records"))
    return not_ours


def _our_record(path):
    """metadata.json's record if a keras-danet save wrote it (its fields say so), else None."""
    try:
        with open(path, encoding="utf-8") as file:
            record = json.load(file)
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict):
        return None
    needed = ("keras_danet_version", "format_version", "config_sha256", "weights_sha256")
    if not all(isinstance(record.get(key), str | int) for key in needed):
        return None
    return record


def _staged_records(directory):
    parent, name = os.path.split(directory)
    prefix = f".{name}.partial-"
    records = []
    for entry in os.listdir(parent):
        path = os.path.join(parent, entry, METADATA_FILE)
        if entry.startswith(prefix) and os.path.isfile(path):
            record = _our_record(path)
            if record is not None:
                records.append(record)
    return records


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
