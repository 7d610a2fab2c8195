"""Loading presets: the folder `resolution.py` finds for a handle, read from one consistent set
of its files, checked (hashes, the model description) and built by registered name."""

import contextlib
import inspect
import json
import logging
import os
import shutil
import tempfile
import time
import typing

import keras

from keras_danet.presets import registry, resolution
from keras_danet.presets.files import PresetError, sha256_file
from keras_danet.presets.saving import (
    CONFIG_FILE,
    METADATA_FILE,
    WEIGHTS_FILE,
    discard_preset_folder,
)

logger = logging.getLogger("keras_danet")


class LoadedPreset(typing.NamedTuple):
    """A preset as read: the model its config.json describes, with its weights and its
    record as `preset_metadata`; the preset's name; its saved training recipe (config.json's
    `compile_config`, as Keras serialised it), or None."""

    model: keras.Model
    name: str
    recipe: dict | None


def load_preset(handle, *, mirror=None, cache_dir=None, progress=True):
    """The `LoadedPreset` of a preset handle. What a model class makes of it (a DANet asked
    of a backbone preset, a backbone of a DANet preset, whether and how it is compiled) is
    that class's `from_preset`'s business."""
    folder, in_our_cache = resolution.resolve_preset(
        handle, mirror=mirror, cache_dir=cache_dir, progress=progress
    )
    return load_preset_folder(folder, discard_if_corrupt=in_our_cache)


def load_preset_folder(folder, discard_if_corrupt=False):
    """The `LoadedPreset` of a preset folder, built after its files are checked.

    With `discard_if_corrupt` (a folder of our own cache), a damaged preset, whichever of
    its files is damaged, is deleted so that the next load fetches it anew.
    """
    try:
        model, metadata, recipe = _load_checked(folder)
    except PresetError as error:
        if not discard_if_corrupt:
            raise
        discard_preset_folder(folder)
        raise PresetError(
            f"{error} The cached copy was deleted: loading again fetches it anew."
        ) from error
    model.preset_metadata = _weights_metadata(metadata)
    name = model.preset_metadata.get("preset") or os.path.basename(os.path.normpath(folder))
    return LoadedPreset(model, name, recipe)


# A reader that opened files of two different saves (another process re-saving the
# preset) opens them again; a save replaces its three files within milliseconds.
_READ_ATTEMPTS = 20
_NAMES = (CONFIG_FILE, WEIGHTS_FILE, METADATA_FILE)


def _load_checked(folder):
    """The model and metadata of `folder`, read from one consistent set of its files.

    A save writes each file under a new name and renames it into place, one file after the
    other (so none is ever absent, but a reader racing a re-save may open new weights beside
    the old metadata.json). The three files are therefore opened first and read only through
    those handles: what was opened cannot change. If they fail their hashes while the folder
    now holds other files, a save was in progress and they are opened again; if the folder
    still holds the same files, the preset is damaged. Keras loads weights from a path, so
    if a save replaced the weights during the load, the opened (verified) file is loaded
    again through a private copy.
    """
    paths = {name: os.path.join(folder, name) for name in _NAMES}
    for attempt in range(_READ_ATTEMPTS):
        with contextlib.ExitStack() as stack:
            opened = _open_files(paths, stack)
            try:
                metadata, config = _check_opened(paths, opened)
            except PresetError:
                time.sleep(0.01 * (attempt + 1))
                if _still_there(paths, opened) or attempt == _READ_ATTEMPTS - 1:
                    raise
                logger.info("%s is being saved by another process; reading again", folder)
                continue
            model = _build(paths, config)
            _load_weights(model, paths, paths[WEIGHTS_FILE])
            if not _still_there(paths, opened):
                # A save renamed new weights over the verified file during the load: load
                # the verified file itself, through a private copy of the opened handle.
                with tempfile.TemporaryDirectory(prefix="keras-danet-read-") as scratch:
                    copy = os.path.join(scratch, WEIGHTS_FILE)
                    with open(copy, "wb") as out:
                        opened[WEIGHTS_FILE].seek(0)
                        shutil.copyfileobj(opened[WEIGHTS_FILE], out, 1 << 22)
                    _load_weights(model, paths, copy)
            return model, metadata, config.get("compile_config")
    raise PresetError(
        f"{folder} kept changing while it was read: another process is saving it over and "
        "over. Load it when the saves are done."
    )


def verify_preset_folder(folder):
    """metadata.json of a complete preset folder whose files pass their hashes, else
    `PresetError` naming the file and the problem. Builds no model."""
    paths = {name: os.path.join(folder, name) for name in _NAMES}
    with contextlib.ExitStack() as stack:
        metadata, _ = _check_opened(paths, _open_files(paths, stack))
    return metadata


def _open_files(paths, stack):
    missing = [path for path in paths.values() if not os.path.isfile(path)]
    if missing:
        raise PresetError(
            f"{os.path.dirname(missing[0])} is not a complete preset folder: "
            f"{', '.join(missing)} missing."
        )
    try:
        return {name: stack.enter_context(open(path, "rb")) for name, path in paths.items()}
    except OSError as error:
        raise PresetError(f"{error.filename} cannot be read: {error.strerror}") from error


def _still_there(paths, opened):
    """Whether each path still names the very file that was opened."""
    for name, path in paths.items():
        try:
            now = os.stat(path)
        except OSError:
            return False
        then = os.fstat(opened[name].fileno())
        if (now.st_dev, now.st_ino) != (then.st_dev, then.st_ino):
            return False
    return True


def _load_weights(model, paths, weights):
    try:
        model.load_weights(weights)
    except Exception as error:
        raise PresetError(
            f"{paths[WEIGHTS_FILE]} does not fit the model of {paths[CONFIG_FILE]}: {error}"
        ) from error


def _read_json_from(file, path):
    try:
        file.seek(0)
        return json.loads(file.read().decode("utf-8"))
    except (OSError, ValueError) as error:
        raise PresetError(f"{path} is not readable JSON: {error}") from error


def _verify_hash(file, path, metadata, key, metadata_path):
    expected = metadata.get(key)
    if expected is None and key == "config_sha256":
        return  # older presets (the bundled demo one too) record the weights alone
    if not isinstance(expected, str):
        found = "no" if expected is None else f"a {type(expected).__name__} as its"
        raise PresetError(
            f"{metadata_path} has {found} {key} field: every keras-danet save records the "
            f"sha256 of {os.path.basename(path)} there, so the file was edited or written by "
            "another tool."
        )
    file.seek(0)
    actual = sha256_file(file)
    if actual != expected:
        raise PresetError(
            f"{path} has sha256 {actual}, but {metadata_path} records {expected}: the file "
            "is truncated or was modified, or a save was interrupted."
        )


def _check_opened(paths, opened):
    """metadata.json and config.json, after the hashes of the opened files are checked."""
    metadata_path = paths[METADATA_FILE]
    metadata = _read_json_from(opened[METADATA_FILE], metadata_path)
    if not isinstance(metadata, dict):
        raise PresetError(f"{metadata_path} holds {type(metadata).__name__}, not a record.")
    for name, key in ((WEIGHTS_FILE, "weights_sha256"), (CONFIG_FILE, "config_sha256")):
        _verify_hash(opened[name], paths[name], metadata, key, metadata_path)
    return metadata, _read_json_from(opened[CONFIG_FILE], paths[CONFIG_FILE])


def _build(paths, config):
    _check_config(paths[CONFIG_FILE], config)
    # Built uncompiled: Keras would compile it with the saved recipe as it stood at the end of
    # the run that saved it (and build the optimizer's slots: a second copy of the weights).
    description = {key: value for key, value in config.items() if key != "compile_config"}
    try:
        model = keras.saving.deserialize_keras_object(description, safe_mode=True)
    except Exception as error:
        raise PresetError(f"{paths[CONFIG_FILE]} does not build a model: {error}") from error
    # Which class the caller wanted is settled by its from_preset: a DANet preset serves
    # a ResNetV1c (its backbone), a backbone preset a DANet (with new heads).
    return model


# What keras.saving.serialize_keras_object writes for a model, and what a layer's config may
# hold besides its constructor's arguments.
_DESCRIPTION_FIELDS = {
    "module",
    "class_name",
    "config",
    "registered_name",
    "build_config",
    "compile_config",
}
_LAYER_FIELDS = {"name", "trainable", "dtype"}


def _check_config(path, config):
    """A config.json that describes one of our models with known fields only, else an error
    naming the file and the fields: a field we do not know would otherwise be dropped."""
    if not isinstance(config, dict):
        raise PresetError(f"{path} holds {type(config).__name__}, not a model description.")
    # Only registered classes may be built from a config.json: a preset is data, not a program.
    registered = config.get("registered_name")
    cls = registry.model_class(registered)
    if cls is None:
        raise PresetError(
            f"{path} describes {registered or config.get('class_name') or config!r}; only "
            f"{', '.join(sorted(registry.model_names()))} may be built from a preset."
        )
    if not isinstance(config.get("config"), dict):
        raise PresetError(
            f"{path} has no 'config' field with the model's arguments (it has "
            f"{', '.join(sorted(config)) or 'no field'}): it was cut or edited by hand."
        )
    unknown = sorted(set(config) - _DESCRIPTION_FIELDS)
    if unknown:
        raise PresetError(f"{path} has fields that no keras-danet save writes: {unknown}.")
    arguments = set(inspect.signature(cls.__init__).parameters) - {"self", "kwargs"}
    unknown = sorted(set(config["config"]) - arguments - _LAYER_FIELDS)
    if unknown:
        raise PresetError(
            f"{path} gives {cls.__name__} arguments it does not take: {unknown} (it takes "
            f"{', '.join(sorted(arguments))})."
        )


def _weights_metadata(metadata):
    """metadata.json less what describes one file (hashes, versions, parameter counts)."""
    per_file = {
        "weights_sha256",
        "config_sha256",
        "format_version",
        "keras_version",
        "keras_danet_version",
    }
    return {k: v for k, v in metadata.items() if k not in per_file | {"parameter_count"}}
