"""Finding and loading presets: a name, an alias, a `Preset`, `hf://org/repo[@revision]`, or a
folder. Named presets come from the local cache, else the Hugging Face Hub, else the original
mmseg checkpoint (downloaded, verified and converted into the cache)."""

import json
import logging
import os
import tempfile

import keras

from keras_danet.presets.files import PresetError, download, sha256_file
from keras_danet.presets.saving import (
    CONFIG_FILE,
    METADATA_FILE,
    WEIGHTS_FILE,
    discard_preset_folder,
    save_to_preset,
)
from keras_danet.presets.table import (
    ALIASES,
    BUNDLED_PRESETS,
    PRESETS,
    Preset,
    bundled_preset_folder,
    checkpoint_url,
    unknown_preset_message,
)

logger = logging.getLogger("keras_danet")

# Only these classes may be built from a config.json: a preset is data, not a program.
_ALLOWED_CLASSES = ("keras_danet>DANet",)
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


def from_preset(cls, handle, *, num_classes=None, mirror=None, cache_dir=None, progress=True):
    """Builds a DANet from a preset; see `DANet.from_preset`."""
    folder, in_our_cache = resolve_preset(
        handle, mirror=mirror, cache_dir=cache_dir, progress=progress
    )
    return load_preset_folder(cls, folder, num_classes=num_classes, discard_if_corrupt=in_our_cache)


def resolve_preset(handle, mirror=None, cache_dir=None, progress=True):
    """Returns `(folder, in_our_cache)` for a preset handle, fetching what is missing."""
    if isinstance(handle, Preset):
        return _resolve_named(handle, mirror, cache_dir, progress)
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
        if not _is_preset_folder(handle) and (
            handle in PRESETS or handle in BUNDLED_PRESETS or handle in ALIASES
        ):
            raise PresetError(
                f"The folder {os.path.abspath(handle)} is not a preset, and its name shadows "
                f"the preset {handle!r}: rename or remove that folder, or load from another "
                "directory."
            )
        return handle, False
    if handle in PRESETS:
        return _resolve_named(PRESETS[handle], mirror, cache_dir, progress)
    if handle in BUNDLED_PRESETS:
        logger.info("Preset %s: bundled with keras_danet", handle)
        return bundled_preset_folder(handle), False
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


def _resolve_named(preset, mirror, cache_dir, progress):
    cached = os.path.join(cache_root(cache_dir), "presets", preset.name)
    tried = []
    if _is_preset_folder(cached):
        logger.info("Preset %s: found in the local cache (%s)", preset.name, cached)
        return cached, True
    logger.info("Preset %s: not in the local cache (%s)", preset.name, cached)
    tried.append(f"local cache {cached}: not there")

    hub = f"{preset.hub_repo}@{preset.hub_revision}"
    try:
        folder = _hub_snapshot(preset.hub_repo, preset.hub_revision)
        logger.info("Preset %s: loaded from the Hugging Face Hub %s", preset.name, hub)
        return folder, False
    except _HubUnavailable as error:
        logger.info("Preset %s: the Hugging Face Hub %s failed (%s)", preset.name, hub, error)
        tried.append(f"Hugging Face Hub {hub}: {error}")

    url = checkpoint_url(preset, mirror or os.environ.get(MIRROR_VARIABLE))
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
    from filelock import FileLock

    parent = os.path.dirname(cached)
    os.makedirs(parent, exist_ok=True)
    # One converter at a time per preset; the others wait, then find the finished folder.
    with FileLock(cached + ".lock"):
        if _is_preset_folder(cached):
            return False
        convert_original_checkpoint(preset, url, cached, progress)
        return True


def convert_original_checkpoint(preset, url, directory, progress=True):
    """Downloads `url`, checks its sha256 against the preset, converts it, saves a preset folder.

    Returns the metadata written (the preset's, plus the source URL and its full sha256).
    """
    try:
        import torch  # noqa: F401  (the converter reads .pth files with it)
    except ImportError:
        raise ImportError(
            "The preset is not on the Hub, and converting the original mmseg checkpoint needs "
            "PyTorch: pip install 'keras-danet[torch]'"
        ) from None
    from keras_danet.convert.mmseg import convert_mmseg_checkpoint

    parent = os.path.dirname(os.path.abspath(directory))
    os.makedirs(parent, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".download.", dir=parent) as scratch:
        path = os.path.join(scratch, url.rsplit("/", 1)[-1])
        source_sha256 = download(url, path, preset.sha256_prefix, progress)
        model = convert_mmseg_checkpoint(path, align_corners=preset.align_corners)
        found = (model.depth, model.num_classes)
        if found != (preset.depth, preset.num_classes):
            raise PresetError(
                f"{url} holds a DANet R{found[0]} with {found[1]} classes; the preset "
                f"{preset.name} is R{preset.depth} with {preset.num_classes} classes."
            )
        metadata = preset.metadata()
        metadata.update(source_url=url, source_sha256=source_sha256)
        save_to_preset(model, directory, metadata)
    return metadata


def _read_json(path):
    try:
        with open(path) as file:
            return json.load(file)
    except (OSError, ValueError) as error:
        raise PresetError(f"{path} is not readable JSON: {error}") from error


def load_preset_folder(cls, folder, num_classes=None, discard_if_corrupt=False):
    """Builds the model of a preset folder after checking its files.

    With `discard_if_corrupt` (a folder of our own cache), a damaged preset, whichever of
    its files is damaged, is deleted so that the next load fetches it anew.
    """
    try:
        model, metadata = _load_checked(cls, folder)
    except PresetError as error:
        if not discard_if_corrupt:
            raise
        discard_preset_folder(folder)
        raise PresetError(
            f"{error} The cached copy was deleted: loading again fetches it anew."
        ) from error
    from keras_danet.models.danet import class_count

    if num_classes is None or class_count(num_classes) == model.num_classes:
        model.preset_metadata = _weights_metadata(metadata)
        return model
    model = _with_new_classifiers(model, class_count(num_classes))
    # The pretrained classes are gone; what the backbone was trained on stays on record.
    record = _weights_metadata(metadata)
    for key in ("class_names", "palette", "miou", "miou_ms_flip", "dataset"):
        record.pop(key, None)
    record["pretrained"] = metadata.get("preset") or os.path.basename(os.path.normpath(folder))
    model.preset_metadata = record
    return model


def _verify_hash(path, metadata, key, metadata_path):
    expected = metadata.get(key)
    if expected is None and key == "config_sha256":
        return  # older presets (the bundled demo one too) record the weights alone
    actual = sha256_file(path)
    if actual != expected:
        raise PresetError(
            f"{path} has sha256 {actual}, but {metadata_path} records {expected}: the file "
            "is truncated or was modified, or a save was interrupted."
        )


def _load_checked(cls, folder):
    paths = {
        name: os.path.join(folder, name) for name in (CONFIG_FILE, WEIGHTS_FILE, METADATA_FILE)
    }
    missing = [path for path in paths.values() if not os.path.isfile(path)]
    if missing:
        raise PresetError(
            f"{folder} is not a complete preset folder: {', '.join(missing)} missing."
        )
    metadata = _read_json(paths[METADATA_FILE])
    if not isinstance(metadata, dict):
        raise PresetError(f"{paths[METADATA_FILE]} holds {type(metadata).__name__}, not a record.")
    _verify_hash(paths[WEIGHTS_FILE], metadata, "weights_sha256", paths[METADATA_FILE])
    _verify_hash(paths[CONFIG_FILE], metadata, "config_sha256", paths[METADATA_FILE])
    config = _read_json(paths[CONFIG_FILE])
    registered = config.get("registered_name") if isinstance(config, dict) else None
    if registered not in _ALLOWED_CLASSES:
        raise PresetError(
            f"{paths[CONFIG_FILE]} describes {registered or config!r}; only "
            f"{', '.join(_ALLOWED_CLASSES)} may be built from a preset."
        )
    try:
        model = keras.saving.deserialize_keras_object(config, safe_mode=True)
    except Exception as error:
        raise PresetError(f"{paths[CONFIG_FILE]} does not build a model: {error}") from error
    if not isinstance(model, cls):
        raise PresetError(f"{folder} holds a {type(model).__name__}, not a {cls.__name__}.")
    try:
        model.load_weights(paths[WEIGHTS_FILE])
    except Exception as error:
        raise PresetError(
            f"{paths[WEIGHTS_FILE]} does not fit the model of {paths[CONFIG_FILE]}: {error}"
        ) from error
    return model, metadata


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


def _with_new_classifiers(pretrained, num_classes):
    """The same model for `num_classes`: every weight kept but the four fresh classifiers."""
    from keras_danet.models.danet import CLASSIFIER_LAYERS

    model = type(pretrained).from_config({**pretrained.get_config(), "num_classes": num_classes})
    for new, old in zip(model.weights, pretrained.weights, strict=True):
        layer = new.path.split("/")[-2]
        if layer not in CLASSIFIER_LAYERS:
            new.assign(old)
    logger.info(
        "Re-initialised %s for %d classes (the preset has %d); every other weight is pretrained.",
        ", ".join(CLASSIFIER_LAYERS),
        num_classes,
        pretrained.num_classes,
    )
    return model
