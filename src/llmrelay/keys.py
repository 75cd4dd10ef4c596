"""The user's key file (public): ``keys_path()``, ``load_keys()``, ``save_key()``, ``delete_key()``.

See ``llmrelay._keys``: ``keys.json`` (mode 0600) in ``LLMRELAY_HOME`` or the platformdirs
user data dir, read by the settings layer as the last key source.
"""

from ._keys import delete_key, keys_path, load_keys, save_key, user_dir

__all__ = ["delete_key", "keys_path", "load_keys", "save_key", "user_dir"]
