"""Writing files so that nobody ever reads a half-written one, and nothing else is touched."""

import contextlib
import os
import tempfile


def _umask():
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def give_default_permissions(path):
    """The mode `open()` or `mkdir()` would have given `path`: temporary files and folders
    are private (0600/0700), which would leave a user's outputs unreadable to others."""
    base = 0o777 if os.path.isdir(path) else 0o666
    os.chmod(path, base & ~_umask())


def output_path(path, what="output"):
    """`path` as an absolute path with `~` expanded; a blank path is an error.

    An empty string would otherwise mean the current folder (`os.path.abspath("")`), which
    is never what a caller meant: `save_to_preset(os.environ.get("OUT", ""))`.
    """
    if isinstance(path, os.PathLike):
        path = os.fspath(path)
    if not isinstance(path, str):
        raise TypeError(f"{what}: a path is a string or os.PathLike, not {type(path).__name__}.")
    if not path.strip():
        raise ValueError(f"{what}: the output path is empty ({path!r}); name a file or folder.")
    return os.path.abspath(os.path.expanduser(path))


@contextlib.contextmanager
def atomic_write_path(path, suffix=""):
    """Yields a temporary path beside `path`; when the block succeeds, it becomes `path`.

    An error inside the block leaves `path` as it was and removes the temporary file; an
    `OSError` names `path`, not the temporary file.

    Example:
    >>> with atomic_write_path("out/numbers.npy", suffix=".npy") as partial:
    ...     np.save(partial, np.arange(3))
    """
    path = output_path(path)
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path} is a folder; expected the path of a file to write.")
    folder = os.path.dirname(path)
    try:
        os.makedirs(folder, exist_ok=True)
        descriptor, partial = tempfile.mkstemp(
            prefix=f".{os.path.basename(path)}.", suffix=f".partial{suffix}", dir=folder
        )
    except OSError as error:
        raise _naming(error, path) from None
    os.close(descriptor)
    try:
        yield partial
        give_default_permissions(partial)
        os.replace(partial, path)
    except OSError as error:
        raise _naming(error, path) from None
    finally:
        if os.path.exists(partial):
            os.remove(partial)


def _naming(error, path):
    """The same kind of OSError, naming the user's `path` instead of the temporary file."""
    if error.errno is None:
        return error
    return type(error)(error.errno, error.strerror or str(error), path)
