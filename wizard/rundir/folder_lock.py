"""One writer per run: an exclusive lock on the run folder, handed from the front end to the training process.

    lock = FolderLock(run_dir)          # AlreadyLocked(pid) when another process holds it
    env = lock.child_env(env)           # the training process inherits the open descriptor (pass_fds)
    FolderLock.inherited(run_dir)       # in the training process: the front end's lock, else a new one
"""

from __future__ import annotations

import os
from pathlib import Path

from wizard.rundir.layout import RUN_LOCK_FILE


class AlreadyLocked(Exception):
    def __init__(self, path: Path, pid: int | None):
        super().__init__(f"{path} is held by pid {pid}")
        self.path, self.pid = path, pid


class FolderLock:
    """An exclusive flock on FOLDER/running.lock, held while the file stays open.

    The front end takes it before writing anything to a run folder and hands the open file to the
    training process (pass_fds); the lock lives as long as either of them does, and the kernel drops
    it when both are gone, even after SIGKILL. The file holds the pid of the last holder.
    """

    NAME = RUN_LOCK_FILE
    ENV = "CAPTION_WIZARD_LOCK_FD"  # the inherited descriptor, for the training process

    def __init__(self, folder: str | os.PathLike, fd: int | None = None):
        import fcntl

        self.path = Path(folder) / self.NAME
        self.fd = fd if fd is not None else os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = self.holder()
            os.close(self.fd)
            raise AlreadyLocked(self.path, pid) from None
        self.write_pid(os.getpid())
        self._not_in_forks()

    def _not_in_forks(self) -> None:
        """A process forked from the holder (a DataLoader worker) closes its copy of the descriptor:
        the flock belongs to the open file, so a worker outliving a SIGKILLed trainer by the seconds
        it takes to notice would otherwise keep the run "already running". Children started with
        subprocess (fork + exec, the training process given the lock through pass_fds) run no
        Python after the fork and keep it."""
        import weakref

        ref = weakref.ref(self)

        def close_in_child():
            lock = ref()
            if lock is not None and lock.fd is not None:
                try:
                    os.close(lock.fd)
                except OSError:
                    pass
                lock.fd = None

        os.register_at_fork(after_in_child=close_in_child)

    @classmethod
    def inherited(cls, folder: str | os.PathLike) -> "FolderLock":
        """The lock the front end passed down (CAPTION_WIZARD_LOCK_FD), else a new one."""
        raw = os.environ.get(cls.ENV)
        if raw and raw.isdigit():
            fd = int(raw)
            try:
                same = os.fstat(fd).st_ino == os.stat(Path(folder) / cls.NAME).st_ino
            except OSError:
                same = False
            if same:
                return cls(folder, fd)
        return cls(folder)

    def holder(self) -> int | None:
        try:
            return int(os.pread(self.fd, 32, 0).decode().strip() or 0) or None
        except (OSError, ValueError):
            return None

    def write_pid(self, pid: int) -> None:
        try:
            os.ftruncate(self.fd, 0)
            os.pwrite(self.fd, f"{pid}\n".encode(), 0)
        except OSError:
            pass  # the pid is for the message only; the flock is what counts

    def child_env(self, env: dict) -> dict:
        return dict(env, **{self.ENV: str(self.fd)})

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
