"""`RunLock`: one run per `--output_dir`."""

import fcntl
import json
import os
import socket
import time

from keras_simclr.cli.errors import CLIError

LOCK_FILE = ".lock"


class RunLock:
    """An exclusive lock on a run folder, held for the life of the process.

    The lock is a `flock` on `DIR/.lock`, which the kernel releases when the
    process ends in any way (SIGKILL included), so a lock file left by a
    killed run is stale by construction: the next run takes it over and says
    so (`previous_holder`: the record a run that did not release the lock
    left). The file records the holder's PID, host and start time, which a
    second run names in its error.

    Args:
        directory: the run folder (created if missing).

    Example:

    ```python
    with RunLock("runs/c10"):
        ...  # train, checkpoint, export
    ```
    """

    def __init__(self, directory):
        self.directory = directory
        self.path = os.path.join(directory, LOCK_FILE)
        self._file = None
        self.previous_holder = None

    def acquire(self):
        """Takes the lock or raises `CLIError` naming the run that holds it."""
        handle = open(self.path, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(handle)
            handle.close()
            raise CLIError(
                f"another run is writing to {self.directory} ({describe_holder(holder)}); "
                "wait for it to finish or choose another --output_dir"
            ) from None
        self.previous_holder = _read_holder(handle)
        handle.seek(0)
        handle.truncate()
        json.dump(
            {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()},
            handle,
        )
        handle.flush()
        self._file = handle
        return self

    def release(self):
        """Releases the lock; the emptied file tells the next run it was released."""
        if self._file is not None:
            self._file.seek(0)
            self._file.truncate()
            self._file.flush()
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


def _read_holder(handle):
    handle.seek(0)
    try:
        return json.loads(handle.read() or "null")
    except ValueError:
        return None


def describe_holder(holder):
    """A lock holder record as text: PID, host and start time."""
    if not holder:
        return "holder unknown"
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder.get("started", 0)))
    return f"pid {holder.get('pid')} on host {holder.get('host')}, started {started}"
