"""``llmrelay serve --workers N``: each worker process gets the server's ``ServerConfig``.

uvicorn starts worker processes that import the app from an import string and call it
(``uvicorn.run("module:factory", factory=True, workers=N)``; "application factories" in
https://www.uvicorn.org/settings/#application): only that string reaches them.
``settings_file`` writes the ``ServerConfig`` (the server key included) as JSON to a file
only its user can read, in a private temporary folder that is removed when ``serve``
ends, and returns the import string of a factory that reads that file:
``llmrelay.server._workers:app_<the file's path in hexadecimal>``. This module's
``__getattr__`` (https://peps.python.org/pep-0562/) turns that name back into the
factory. Nothing is written into the environment, and nothing is read from it but the
settings every process reads (``llmrelay.settings``).
"""

from __future__ import annotations

import contextlib
import functools
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ._config import ServerConfig

__all__ = ["app_from_file", "remove_stale", "settings_file"]

_PREFIX = "app_"
_NAME = "server.json"
_FOLDER = "llmrelay-serve-"


@contextlib.contextmanager
def settings_file(config: ServerConfig) -> Iterator[str]:
    """Write ``config`` to a private file; yield the import string of its app factory.

    The folder (mode 0700) and the file (mode 0600) are removed when the block ends. A
    ``serve`` killed with SIGKILL cannot remove them: the folder's name carries the
    process id, and the next ``settings_file`` removes this user's folders whose process
    is gone (``remove_stale``).

    Raises:
        TypeError: ``config.client_kwargs`` holds a value JSON cannot hold.
    """
    text = config.to_json()
    remove_stale(Path(tempfile.gettempdir()))
    prefix = f"{_FOLDER}{os.getpid()}-"
    with tempfile.TemporaryDirectory(prefix=prefix) as folder:
        path = Path(folder) / _NAME
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        yield f"{__name__}:{_PREFIX}{os.fsencode(path).hex()}"


def remove_stale(root: Path) -> list[Path]:
    """Remove the settings folders under ``root`` left by ``serve`` processes that died.

    Only folders named by ``settings_file`` (``llmrelay-serve-<pid>-...``), owned by this
    user, whose process no longer exists, are removed; errors are ignored (another
    ``serve`` may be removing the same folder). Returns the folders removed.
    """
    removed: list[Path] = []
    try:
        entries = list(root.glob(f"{_FOLDER}*-*"))
    except OSError:
        return removed
    for folder in entries:
        pid_text = folder.name[len(_FOLDER) :].split("-", 1)[0]
        if not pid_text.isdigit() or _alive(int(pid_text)):
            continue
        try:
            if folder.stat().st_uid != os.getuid():
                continue
            (folder / _NAME).unlink(missing_ok=True)
            folder.rmdir()
        except OSError:
            continue
        removed.append(folder)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. PermissionError: it exists, another user's
        return True
    return True


def app_from_file(path: str | os.PathLike[str]) -> Any:
    """The app of the ``ServerConfig`` in ``path`` (a worker's factory), with its logging.

    Raises:
        OSError: the file cannot be read.
        ValueError: it does not hold a server config.
    """
    from ._app import create_app
    from ._context import configure_access_log
    from ._logs import redact_root_handlers

    configure_access_log()
    redact_root_handlers()
    config = ServerConfig.from_json(Path(path).read_text(encoding="utf-8"))
    return create_app(config=config)


def __getattr__(name: str) -> Callable[[], Any]:
    """``app_<hex path>`` -> a factory of ``app_from_file(path)`` (see the module docstring)."""
    if name.startswith(_PREFIX):
        try:
            path = os.fsdecode(bytes.fromhex(name[len(_PREFIX) :]))
        except ValueError:
            pass
        else:
            if Path(path).name == _NAME:
                return functools.partial(app_from_file, path)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
