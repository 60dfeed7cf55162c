"""Writing outputs: all or nothing; and the build folder's lock, which the programs a build starts hold too."""
from __future__ import annotations

import contextlib
import filecmp
import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Iterator


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_MODE = 0o666 & ~_umask()


# The build folder's lock (``build.lock``) while this process holds it, as open
# file descriptors. The programs a build starts (pdflatex, the process that cuts
# letters) are handed them: a build killed outright leaves its folder locked
# until they have finished as well, so the next build never shares a work
# folder with a pdflatex still writing into it.
held_locks: set[int] = set()


def locks_for_children() -> tuple[int, ...]:
    """``pass_fds`` for a program the build starts."""
    return tuple(sorted(held_locks))


def write_atomic(path: Path, data: bytes, durable: bool = False) -> None:
    """Write via a temporary file in the same folder, then rename: a reader (or
    a killed build) sees the old file or the new one, never half of one.
    ``durable``: on disk before this returns (fsync of the file and its folder),
    for records that must survive a crash, such as the send log."""
    # the same bytes already there: left as they are (a FIFO or a device there is not
    # read, which would never end, but replaced)
    if path.is_file() and path.read_bytes() == data:
        return
    with replacing(path, durable) as handle:
        handle.write(data)


@contextlib.contextmanager
def replacing(path: Path, durable: bool = False) -> Iterator[BinaryIO]:
    """``write_atomic`` for a file written piece by piece, such as a bundle too
    large to hold in memory: a temporary file beside ``path`` (open to write and
    to read back), renamed onto ``path`` when the block ends without an error,
    deleted when it raises. A file there with the same bytes is left as it was.
    An OSError that names no file (a full disk's write) is said of ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w+b") as handle:
            yield handle
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        if path.is_file() and filecmp.cmp(tmp, path, shallow=False):
            os.unlink(tmp)
            return
        os.chmod(tmp, _MODE)  # mkstemp makes it private; outputs are ordinary files
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.filename is None:  # a full disk's write names no file: this one
            raise OSError(exc.errno, exc.strerror, str(path)) from exc
        raise
    if durable:
        folder = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
