"""File helpers for presets: hashing and verified downloads."""

import hashlib
import json
import os
import urllib.error
import urllib.request

from keras_danet.atomic_files import atomic_write_path

_CHUNK = 1 << 20


class PresetError(ValueError):
    """A preset that cannot be found, downloaded, verified or loaded."""


def sha256_file(path_or_file):
    """The sha256 of a file, given its path or a binary file opened at its start."""
    if hasattr(path_or_file, "read"):
        digest = hashlib.sha256()
        for chunk in iter(lambda: path_or_file.read(_CHUNK), b""):
            digest.update(chunk)
        return digest.hexdigest()
    with open(path_or_file, "rb") as file:
        return sha256_file(file)


def download(url, destination, sha256_prefix=None, progress=True):
    """Downloads `url` (http(s):// or file://) to `destination`; returns the file's sha256.

    The bytes go to a temporary file beside `destination` and are hashed on the way; only a
    file whose sha256 starts with `sha256_prefix` is renamed into place.
    """
    from tqdm.auto import tqdm  # reads TQDM_* settings when imported

    try:
        response = urllib.request.urlopen(url, timeout=60)
    except (urllib.error.URLError, OSError, ValueError) as error:
        raise PresetError(f"Could not download {url}: {error}") from error
    digest = hashlib.sha256()
    with response, atomic_write_path(destination) as partial, open(partial, "wb") as file:
        total = response.headers.get("Content-Length")
        with tqdm(
            total=int(total) if total else None,
            unit="B",
            unit_scale=True,
            desc=os.path.basename(destination),
            disable=not progress,
        ) as bar:
            for chunk in iter(lambda: response.read(_CHUNK), b""):
                file.write(chunk)
                digest.update(chunk)
                bar.update(len(chunk))
        sha256 = digest.hexdigest()
        if sha256_prefix and not sha256.startswith(sha256_prefix.lower()):
            raise PresetError(
                f"{url} has sha256 {sha256}, which does not start with the expected "
                f"{sha256_prefix}: the file is corrupt or not the published one. Deleted it."
            )
    return sha256


def read_json(path):
    """A JSON file's content; `PresetError` naming the file if it is missing or not JSON."""
    try:
        with open(path, encoding="utf-8") as file:
            return json.load(file)
    except FileNotFoundError:
        raise PresetError(f"{path} is missing: the folder is not a complete preset.") from None
    except (OSError, ValueError) as error:
        raise PresetError(f"{path} is not readable JSON: {error}") from error
