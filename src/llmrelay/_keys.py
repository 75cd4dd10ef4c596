"""The user's key file: ``keys.json`` in the llmrelay home directory, readable only by its owner.

``LLMRELAY_HOME`` names the directory; otherwise it is ``platformdirs.user_data_dir("llmrelay")``
(the exchange log lives there too). The file is a JSON object ``{provider: key}``. The settings
layer reads it as the last key source (after arguments, environment and config file); the CLI
writes it (``llmrelay keys set``). Keys never appear in errors or logs.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from . import errors
from ._setting_table import home

__all__ = ["delete_key", "keys_path", "load_keys", "save_key", "user_dir"]

_MAX_BYTES = 1 << 20


def user_dir() -> Path:
    """``$LLMRELAY_HOME``, or ``<platformdirs user data dir>/llmrelay`` (not created here).

    Read by the settings layer (``llmrelay.settings.home``).
    """
    return home()


def keys_path() -> Path:
    """Where the keys file is (``<user dir>/keys.json``); it may not exist yet."""
    return user_dir() / "keys.json"


def load_keys(path: str | os.PathLike[str] | None = None) -> dict[str, str]:
    """Read ``{provider: key}`` from ``path`` (default ``keys_path()``); missing file -> ``{}``.

    Raises:
        llmrelay.errors.ConfigError: the file cannot be read or is not a JSON object of
            strings (the message names the file, never a key).
    """
    file = Path(path) if path is not None else keys_path()
    try:
        with file.open("rb") as handle:
            raw = handle.read(_MAX_BYTES + 1)
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise errors.ConfigError(f"cannot read the keys file {file}: {exc.strerror}") from None
    if len(raw) > _MAX_BYTES:
        raise errors.ConfigError(f"the keys file {file} is larger than 1 MiB")
    try:
        data = json.loads(raw.decode("utf-8")) if raw.strip() else {}
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise errors.ConfigError(f"the keys file {file} is not valid JSON") from None
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in data.items()
    ):
        raise errors.ConfigError(f"the keys file {file} must be a JSON object of strings")
    return data


def _write(file: Path, keys: dict[str, str]) -> None:
    file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    import tempfile  # only when writing (its imports cost ~6 ms of every start-up)

    fd, tmp = tempfile.mkstemp(prefix=".keys-", suffix=".json", dir=file.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(keys, handle, indent=2, sort_keys=True)
            handle.write("\n")
        os.replace(tmp, file)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_key(provider: str, key: str, path: str | os.PathLike[str] | None = None) -> Path:
    """Store ``key`` for ``provider`` (file mode 0600, replaced atomically); return the path.

    Raises:
        llmrelay.errors.ConfigError: the file exists but is invalid, or cannot be written.
    """
    file = Path(path) if path is not None else keys_path()
    keys = load_keys(file)
    keys[provider] = key
    try:
        _write(file, keys)
    except OSError as exc:
        raise errors.ConfigError(f"cannot write the keys file {file}: {exc.strerror}") from None
    return file


def delete_key(provider: str, path: str | os.PathLike[str] | None = None) -> bool:
    """Remove ``provider``'s key; return whether there was one."""
    file = Path(path) if path is not None else keys_path()
    keys = load_keys(file)
    if keys.pop(provider, None) is None:
        return False
    try:
        _write(file, keys)
    except OSError as exc:
        raise errors.ConfigError(f"cannot write the keys file {file}: {exc.strerror}") from None
    return True
