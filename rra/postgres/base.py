"""The database backend (ENGINE "rra.postgres"; the embedded server's, rra.embedded_db,
builds on it): Django's PostgreSQL backend, whose connection pool is rra.dbpool's
(psycopg_pool's, with its reconnection delay capped and a check without a round trip
on a busy connection) instead of psycopg_pool's own."""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured
from django.db.backends.postgresql import base
from django.db.backends.postgresql.base import NO_DB_ALIAS

from rra import dbpool


class DatabaseWrapper(base.DatabaseWrapper):
    @property
    def pool(self):
        # Django 5.2's DatabaseWrapper.pool, building rra.dbpool.ConnectionPool.
        pool_options = self.settings_dict["OPTIONS"].get("pool")
        if self.alias == NO_DB_ALIAS or not pool_options:
            return None
        if self.alias not in self._connection_pools:
            if self.settings_dict.get("CONN_MAX_AGE", 0) != 0:
                raise ImproperlyConfigured("Pooling doesn't support persistent connections.")
            if pool_options is True:
                pool_options = {}
            connect_kwargs = self.get_connection_params()
            # Ensure we run in autocommit, Django properly sets it later on.
            connect_kwargs["autocommit"] = True
            pool = dbpool.ConnectionPool(
                kwargs=connect_kwargs,
                open=False,  # Do not open the pool during startup.
                configure=self._configure_connection,
                check=dbpool.quick_check if self.settings_dict["CONN_HEALTH_CHECKS"] else None,
                **pool_options,
            )
            # setdefault(): of pools built at once by several threads, the first wins.
            self._connection_pools.setdefault(self.alias, pool)
        return self._connection_pools[self.alias]
