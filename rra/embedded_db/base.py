"""The database backend of the embedded PostgreSQL (ENGINE "rra.embedded_db"): the
PostgreSQL backend (rra/postgres: Django's, with rra.dbpool's pool), which starts (or finds) the embedded server on its first connection
instead of when the settings are read, so importing the settings starts nothing."""

from __future__ import annotations

import threading
from pathlib import Path

from rra import embedded_db
from rra.postgres import base

_found: dict[tuple[str, str], dict[str, str]] = {}
_lock = threading.Lock()


def _server_fields(folder: str, database: str) -> dict[str, str]:
    """The server's connection fields (its socket's folder, user), once per process."""
    key = (folder, database)
    with _lock:
        if key not in _found:
            _found[key] = embedded_db.ensure_running(Path(folder), database)
        return _found[key]


class DatabaseWrapper(base.DatabaseWrapper):
    def get_connection_params(self) -> dict:
        # Every connection (a pool's too) is made from these parameters.
        if not self.settings_dict["HOST"]:
            fields = _server_fields(
                self.settings_dict["EMBEDDED_DIR"], self.settings_dict["EMBEDDED_DATABASE"]
            )
            self.settings_dict["HOST"] = fields["HOST"]
            self.settings_dict["USER"] = self.settings_dict["USER"] or fields["USER"]
        return super().get_connection_params()
