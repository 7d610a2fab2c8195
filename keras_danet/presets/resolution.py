"""Finding presets: a name, an alias, a `Preset`, `hf://org/repo[@revision]`, or a folder. A
preset converted from an mmseg checkpoint comes from the local cache, else its copy on the
Hugging Face Hub, else the original checkpoint (downloaded, verified and converted into the
cache); the other sources are read where they are. `loading.py` reads the folder found."""

import logging
import os
import tempfile

from keras_danet.file_lock import exclusive_lock
from keras_danet.presets import registry
from keras_danet.presets.files import PresetError, download
from keras_danet.presets.preset import Preset
from keras_danet.presets.saving import CONFIG_FILE, METADATA_FILE, WEIGHTS_FILE, save_to_preset
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
        if not is_preset_folder(handle) and handle in PRESETS:
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
    # huggingface_hub reads HF_HUB_OFFLINE, HF_ENDPOINT and HF_HOME when it is imported:
    # imported here, settings made after `import keras_danet` count.
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


def is_preset_folder(folder):
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
        if not is_preset_folder(source.path):
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
    if source is None:
        raise PresetError(
            f"The record {preset.name or '(unnamed)'} is a model's own `preset`, which says "
            "where no weights are: save the model with save_to_preset and load that folder."
        )
    raise TypeError(f"The preset {preset.name!r} has a source of unknown kind: {source!r}")


def _resolve_converted(preset, mirror, cache_dir, progress):
    cached = os.path.join(cache_root(cache_dir), "presets", preset.name)
    tried = []
    if is_preset_folder(cached):
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
        if is_preset_folder(cached):
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
        source_sha256 = download(url, path, preset.source.sha256_prefix, progress)
        model = convert(path, preset, url)
        metadata = preset.metadata()
        metadata.update(source_url=url, source_sha256=source_sha256)
        save_to_preset(model, directory, metadata)
    return metadata
