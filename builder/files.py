"""Writing outputs: all or nothing; and the build folder's lock, which the programs a build starts hold too."""
from __future__ import annotations

import contextlib
import errno
import fcntl
import filecmp
import os
import re
import stat
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


def write_atomic(path: Path, data: bytes, durable: bool = False) -> bool:
    """Write via a temporary file in the same folder, then rename: a reader (or
    a killed build) sees the old file or the new one, never half of one.
    ``durable``: on disk before this returns (fsync of the file and its folder),
    for records that must survive a crash, such as the send log. False when the
    file held these bytes already (left as it was)."""
    # the same bytes already there: left as they are (a FIFO or a device there is not
    # read, which would never end, but replaced)
    if path.is_file() and path.read_bytes() == data:
        return False
    with replacing(path, durable) as handle:
        handle.write(data)
    return True


@contextlib.contextmanager
def replacing(path: Path, durable: bool = False, *, clear_stale: bool = False) -> Iterator[BinaryIO]:
    """``write_atomic`` for a file written piece by piece, such as a bundle too
    large to hold in memory: a temporary file beside ``path`` (open to write and
    to read back), renamed onto ``path`` when the block ends without an error,
    deleted when it raises. A file there with the same bytes is left as it was.
    An OSError that names no file (a full disk's write) or the temporary file
    (a folder that cannot be written, a folder named ``path``) is said of ``path``.
    The temporary file is locked while it is written: ``clear_stale`` first deletes
    the temporary files of ``path`` that no process holds, left by one killed
    outright (``kill -9``) while it wrote (a bundle's is as large as the bundle)."""
    if path.parent.exists() and not path.parent.is_dir():  # mkdir would say "File exists"
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(path.parent))
    path.parent.mkdir(parents=True, exist_ok=True)
    if clear_stale:
        clear_temporaries_of(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=_temporary_prefix(path))
    except OSError as exc:  # a folder that cannot be written: said of the file, not a name mkstemp made up
        raise OSError(exc.errno, exc.strerror, str(path)) from exc
    try:
        with contextlib.suppress(OSError):  # a file system without locks: nothing is cleared
            fcntl.flock(fd, fcntl.LOCK_EX)  # released when the file is closed, or its process ends
        # open (so locked) until it is renamed or deleted: never taken for one left behind
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
        # a full disk's write names no file, a failed rename the temporary file,
        # which is gone: both are said of the file being written
        if isinstance(exc, OSError) and exc.strerror and exc.filename in (None, tmp):
            raise OSError(exc.errno, exc.strerror, str(path)) from exc
        raise
    if durable:
        folder = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)


def _temporary_prefix(path: Path) -> str:
    """The start of the temporary files' names: ``path``'s name between dots, cut
    short so that, with mkstemp's eight characters, it is a name a file system
    allows (255 bytes) when ``path``'s own name is."""
    name = path.name
    while len(os.fsencode(name)) > 230:
        name = name[:-1]
    return f".{name}."


# mkstemp's names: the prefix, then eight of these
_TEMPORARY_NAME_RE = re.compile(r"[a-z0-9_]{8}")
# a temporary file of any file: ``_temporary_prefix``, then mkstemp's eight characters
_ANY_TEMPORARY_RE = re.compile(r"\..+\.[a-z0-9_]{8}")


def shown_name(name: str) -> str:
    """A file name as a message prints it: as it is, or, holding a line break, a terminal's
    control character or bytes that are not UTF-8 (a file copied in by hand), quoted with
    those written as escapes, so the message stays one line and the terminal only shows it."""
    return name if name.isprintable() else repr(name)


def is_temporary(name: str) -> bool:
    """Whether ``name`` is that of a temporary file ``replacing`` or ``write_atomic`` makes."""
    return bool(_ANY_TEMPORARY_RE.fullmatch(name))


def clear_temporaries_of(path: Path) -> None:
    """Delete the temporary files ``replacing`` left beside ``path`` in a process
    that was killed: those no process holds locked. Best effort: one that cannot
    be opened or deleted is left where it is."""
    prefix = _temporary_prefix(path)
    try:
        entries = [e for e in os.scandir(path.parent) if e.name.startswith(prefix)
                   and _TEMPORARY_NAME_RE.fullmatch(e.name[len(prefix):])]
    except OSError:
        return
    for entry in entries:
        _delete_if_left(entry.path)


def clear_stale_temporaries(folder: Path) -> None:
    """``clear_temporaries_of`` for every file of ``folder``: a build killed while it cut
    letters leaves a temporary file in ``letters/`` for each process that was cutting
    (one as large as a letter), which the next build deletes."""
    try:
        entries = [e for e in os.scandir(folder) if _ANY_TEMPORARY_RE.fullmatch(e.name)]
    except OSError:
        return
    for entry in entries:
        _delete_if_left(entry.path)


def _delete_if_left(path: str) -> None:
    """Delete the temporary file at ``path`` if it was left by a process killed while
    it wrote: a private file (mkstemp makes it 0600 until it is renamed: a file kept
    there by hand is not) that no process holds locked."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISREG(mode) and stat.S_IMODE(mode) == 0o600:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # BlockingIOError: still being written
            os.unlink(path)
    except OSError:
        pass
    finally:
        os.close(fd)
