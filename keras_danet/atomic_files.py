"""Writing files so that nobody ever reads a half-written one."""

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


@contextlib.contextmanager
def atomic_write_path(path, suffix=""):
    """Yields a temporary path beside `path`; when the block succeeds, it becomes `path`.

    Example:
    >>> with atomic_write_path("out/overlay.png", suffix=".png") as partial:
    ...     image.save(partial)
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    descriptor, partial = tempfile.mkstemp(
        prefix=f".{os.path.basename(path)}.", suffix=f".partial{suffix}", dir=folder
    )
    os.close(descriptor)
    try:
        yield partial
        give_default_permissions(partial)
        os.replace(partial, path)
    finally:
        if os.path.exists(partial):
            os.remove(partial)
