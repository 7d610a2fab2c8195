"""Finding and loading presets: a name, an alias, a `Preset`, `hf://org/repo[@revision]`, or a
folder. A preset converted from an mmseg checkpoint comes from the local cache, else its copy
on the Hugging Face Hub, else the original checkpoint (downloaded, verified and converted into
the cache); the other sources are read where they are."""

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

from keras_danet.file_lock import exclusive_lock
from keras_danet.presets import registry
from keras_danet.presets.files import PresetError, download, sha256_file
from keras_danet.presets.preset import Preset
from keras_danet.presets.saving import (
    CONFIG_FILE,
    METADATA_FILE,
    WEIGHTS_FILE,
    discard_preset_folder,
    save_to_preset,
)
from keras_danet.presets.sources import BundledFolder, HubRepo, LocalFolder, MmsegCheckpoint
from keras_danet.presets.table import PRESETS, unknown_preset_message

logger = logging.getLogger("keras_danet")

_HUB_FILES = [CONFIG_FILE, WEIGHTS_FILE, METADATA_FILE, "README.md"]
MIRROR_VARIABLE = "KERAS_DANET_MMSEG_MIRROR"


def cache_root(cache_dir=None):
    """The folder of converted presets: `cache_dir`, $KERAS_DANET_HOME or ~/.cache/keras_danet."""
    if cache_dir:
        return os.path.abspath(os.fspath(cache_dir))
    if os.environ.get("KERAS_DANET_HOME"):
        return os.path.abspath(os.environ["KERAS_DANET_HOME"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "keras_danet")


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
    folder, in_our_cache = resolve_preset(
        handle, mirror=mirror, cache_dir=cache_dir, progress=progress
    )
    return load_preset_folder(folder, discard_if_corrupt=in_our_cache)


def resolve_preset(handle, mirror=None, cache_dir=None, progress=True):
    """Returns `(folder, in_our_cache)` for a preset handle, fetching what is missing."""
    if isinstance(handle, Preset):
        return _resolve_record(handle, mirror, cache_dir, progress)
    if isinstance(handle, os.PathLike):
        handle = os.fspath(handle)
    if not isinstance(handle, str):
        raise TypeError(f"A preset handle is a name, a folder or hf://org/repo, not {handle!r}.")
    if handle.startswith("hf://"):
        repo, _, revision = handle.removeprefix("hf://").partition("@")
        try:
            folder = _hub_snapshot(repo, revision or None)
        except _HubUnavailable as error:
            raise PresetError(
                f"Could not get {handle} from the Hugging Face Hub: {error}"
            ) from None
        logger.info("Preset %s: loaded from the Hugging Face Hub (%s)", handle, folder)
        return folder, False
    if os.path.isdir(handle):
        if not _is_preset_folder(handle) and handle in PRESETS:
            raise PresetError(
                f"The folder {os.path.abspath(handle)} is not a preset, and its name shadows "
                f"the preset {handle!r}: rename or remove that folder, or load from another "
                "directory."
            )
        return handle, False
    if handle in PRESETS:
        return _resolve_record(PRESETS[handle], mirror, cache_dir, progress)
    if os.sep in handle or handle.startswith((".", "~")):
        hint = ""
        if handle.count("/") == 1 and not handle.startswith((".", "~", "/")):
            hint = f" For the Hugging Face Hub repo, write hf://{handle}."
        raise PresetError(f"No preset folder at {handle}.{hint}")
    raise PresetError(unknown_preset_message(handle))


class _HubUnavailable(Exception):
    """The Hub has no such repo or revision, or cannot be reached (offline mode included)."""


def _hub_snapshot(repo, revision):
    import huggingface_hub
    from huggingface_hub import errors

    try:
        # The Hub's own cache and file locks; HF_HUB_OFFLINE and HF_ENDPOINT are honoured.
        return huggingface_hub.snapshot_download(
            repo, revision=revision, allow_patterns=_HUB_FILES, library_name="keras-danet"
        )
    except (
        errors.RepositoryNotFoundError,
        errors.RevisionNotFoundError,
        errors.LocalEntryNotFoundError,
        errors.OfflineModeIsEnabled,
        errors.HfHubHTTPError,
        errors.HFValidationError,
        ConnectionError,
        TimeoutError,
    ) as error:
        reason = " ".join(str(error).split())
        raise _HubUnavailable(f"{type(error).__name__}: {reason[:300]}") from error


def _is_preset_folder(folder):
    return all(
        os.path.isfile(os.path.join(folder, name))
        for name in (CONFIG_FILE, WEIGHTS_FILE, METADATA_FILE)
    )


def _resolve_record(preset, mirror, cache_dir, progress):
    """The folder of a `Preset`, by its source."""
    source = preset.source
    if isinstance(source, BundledFolder):
        logger.info("Preset %s: bundled with keras_danet", preset.name)
        return source.folder, False
    if isinstance(source, LocalFolder):
        if not _is_preset_folder(source.path):
            raise PresetError(f"No preset folder at {source.path}.")
        return source.path, False
    if isinstance(source, HubRepo):
        try:
            return _hub_snapshot(source.repo, source.revision), False
        except _HubUnavailable as error:
            raise PresetError(
                f"Could not get {source.handle} from the Hugging Face Hub: {error}"
            ) from None
    if isinstance(source, MmsegCheckpoint):
        return _resolve_converted(preset, mirror, cache_dir, progress)
    raise TypeError(f"The preset {preset.name!r} has a source of unknown kind: {source!r}")


def _resolve_converted(preset, mirror, cache_dir, progress):
    cached = os.path.join(cache_root(cache_dir), "presets", preset.name)
    tried = []
    if _is_preset_folder(cached):
        logger.info("Preset %s: found in the local cache (%s)", preset.name, cached)
        return cached, True
    logger.info("Preset %s: not in the local cache (%s)", preset.name, cached)
    tried.append(f"local cache {cached}: not there")

    if preset.hub is not None:
        hub = f"{preset.hub.repo}@{preset.hub.revision}"
        try:
            folder = _hub_snapshot(preset.hub.repo, preset.hub.revision)
            logger.info("Preset %s: loaded from the Hugging Face Hub %s", preset.name, hub)
            return folder, False
        except _HubUnavailable as error:
            logger.info("Preset %s: the Hugging Face Hub %s failed (%s)", preset.name, hub, error)
            tried.append(f"Hugging Face Hub {hub}: {error}")

    url = preset.source.url(mirror or os.environ.get(MIRROR_VARIABLE))
    try:
        converted = _convert_into_cache(preset, url, cached, progress)
    except (PresetError, ImportError, OSError, ValueError) as error:
        logger.info("Preset %s: converting %s failed (%s)", preset.name, url, error)
        tried.append(f"original mmseg checkpoint {url}: {error}")
        raise PresetError(
            f"Could not load the preset {preset.name!r}. Tried, in order:\n"
            + "\n".join(f"  - {attempt}" for attempt in tried)
        ) from error
    if converted:
        logger.info("Preset %s: converted %s into the local cache (%s)", preset.name, url, cached)
    else:
        logger.info(
            "Preset %s: found in the local cache (%s), converted by another process",
            preset.name,
            cached,
        )
    return cached, True


def _convert_into_cache(preset, url, cached, progress):
    """Converts the original checkpoint into the cache; False if another process just did."""
    parent = os.path.dirname(cached)
    os.makedirs(parent, exist_ok=True)
    # One converter at a time per preset; the others wait, then find the finished folder.
    # The lock file goes with the lock: the cache's presets/ holds preset folders only.
    with exclusive_lock(os.path.join(parent, f".{os.path.basename(cached)}.lock")):
        if _is_preset_folder(cached):
            return False
        convert_original_checkpoint(preset, url, cached, progress)
        return True


def convert_original_checkpoint(preset, url, directory, progress=True):
    """Downloads `url`, checks its sha256 against the preset, converts it, saves a preset folder.

    Returns the metadata written (the preset's, plus the source URL and its full sha256).
    """
    convert, check = registry.converter(preset.architecture)
    if check is not None:
        check()  # before the download: a conversion that cannot run here fails at once
    parent = os.path.dirname(os.path.abspath(directory))
    os.makedirs(parent, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".download.", dir=parent) as scratch:
        path = os.path.join(scratch, url.rsplit("/", 1)[-1])
        source_sha256 = download(url, path, preset.sha256_prefix, progress)
        model = convert(path, preset, url)
        metadata = preset.metadata()
        metadata.update(source_url=url, source_sha256=source_sha256)
        save_to_preset(model, directory, metadata)
    return metadata


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
