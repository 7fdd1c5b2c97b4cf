"""Atomic file and folder writes and checksums: a file (a folder) is either the old one or the complete new one, never half."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; published files are world-readable
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_json(path: str | os.PathLike, obj) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))


# ------------------------------------------------------------------ folders
RENAME_EXCHANGE = 2  # linux/fs.h: swap two paths atomically (renameat2, Linux >= 3.15, ext4/xfs/btrfs/tmpfs)
AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Swap the paths ``a`` and ``b`` in one step (renameat2 RENAME_EXCHANGE); False where the system or
    the file system has no such call (then nothing happened)."""
    import ctypes
    import errno

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):  # not Linux, or a libc without renameat2 (glibc < 2.28)
        return False
    if renameat2(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def backup_dir(target: str | os.PathLike) -> Path:
    """Where :func:`replace_dir`'s fallback keeps the old folder while it puts the new one in place."""
    target = Path(target)
    return target.with_name(f".{target.name}.old")


def recover_dir(target: str | os.PathLike) -> bool:
    """Undo an interrupted :func:`replace_dir` fallback: ``target`` missing but its backup whole -> the backup
    goes back to ``target``. True when it did. Call it before reading or replacing ``target``."""
    target, backup = Path(target), backup_dir(target)
    if not target.exists() and backup.is_dir():
        os.replace(backup, target)
        return True
    return False


def replace_dir(staging: str | os.PathLike, target: str | os.PathLike) -> None:
    """Publish the finished folder ``staging`` as ``target`` (same file system): at every instant ``target``
    is the complete old folder or the complete new one, even if the process is killed midway.

    Linux swaps the two in one atomic step (RENAME_EXCHANGE), then deletes the old one; elsewhere the old
    folder is renamed to :func:`backup_dir` first, which :func:`recover_dir` puts back if the process died
    before the new one was in place (the only instant without ``target``)."""
    staging, target = Path(staging), Path(target)
    recover_dir(target)
    if not target.exists():
        os.replace(staging, target)
        return
    if _exchange(staging, target):
        shutil.rmtree(staging, ignore_errors=True)  # now the old folder
        return
    backup = backup_dir(target)
    shutil.rmtree(backup, ignore_errors=True)
    os.replace(target, backup)
    os.replace(staging, target)
    shutil.rmtree(backup, ignore_errors=True)
