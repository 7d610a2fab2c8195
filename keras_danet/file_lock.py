"""An exclusive file lock whose file is gone once the lock is released.

`filelock` (which the Hub client brings) leaves its lock file behind on Linux and macOS on
purpose: deleting a file that others may be waiting on is a race. Our cache must hold preset
folders only, so this lock deletes its file while still holding it, and every process that
obtains a lock checks that the file it locked is still the one at the path; if a releasing
holder deleted it meanwhile, it tries again on the new file.
"""

import contextlib
import os

from filelock import FileLock

try:
    import fcntl
except ImportError:  # Windows: filelock's lock there deletes its file itself
    fcntl = None


@contextlib.contextmanager
def exclusive_lock(path):
    """Holds an exclusive lock on `path` for the block, then deletes `path`, however the
    block ends (a process killed with the lock leaves the file; the next holder deletes it).

    Example:
    >>> with exclusive_lock(".my_danet.lock"):   # one process at a time writes my_danet/
    ...     folder = model.save_to_preset("my_danet", overwrite=True)
    """
    if fcntl is None:
        with FileLock(path):
            yield
        return
    descriptor = _locked_descriptor(path)
    try:
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)  # while still held: a waiter then sees a new file and retries
        os.close(descriptor)  # releases the lock


def _locked_descriptor(path):
    while True:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            try:
                current = os.stat(path)
            except FileNotFoundError:
                current = None
            if current is not None and os.path.samestat(current, os.fstat(descriptor)):
                return descriptor
        except BaseException:
            os.close(descriptor)
            raise
        os.close(descriptor)  # the holder before us deleted it: lock the new file
