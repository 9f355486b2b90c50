"""The Dagster instance's PostgreSQL event log, keeping its connection open between statements.

dagster-postgres opens a new database connection for every statement outside the webserver (SQLAlchemy's
``NullPool``), and storing one asset event takes two (the event, then the asset index). Before a run over many
partitions starts, Dagster stores one "planned" event for each asset partition of it (the UI marks the partitions
of a failed run as failed from them): ~7,600 events for the visual prompts of all of ScanNet, each paying for two
new connections. ``PooledPostgresEventLogStorage`` is the same storage on a pool of one connection per process
(concurrent threads get more, closed again when returned), checked with a ping before each use so a restarted
server is reconnected; the webserver's own pooling (``optimize_for_webserver``) still replaces it there. On a
loopback server it stores an event in ~1.6 ms instead of ~15 ms (docs/ARCHITECTURE.md, Orchestration decisions).
``resources.environment.postgres_home`` names it in the instance's ``dagster.yaml``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dagster._serdes import ConfigurableClassData
from dagster_postgres.event_log import PostgresEventLogStorage
from dagster_postgres.utils import create_pg_engine, get_token_provider_from_config, pg_url_from_config

POOL_RECYCLE_S = 3600  # reopen a connection after an hour (servers and proxies drop idle ones)
POOL_OVERFLOW = 10  # connections beyond the kept one for concurrent threads, closed when returned


class PooledPostgresEventLogStorage(PostgresEventLogStorage):
    """``PostgresEventLogStorage`` with one connection kept open per process instead of one opened per statement."""

    def __init__(
        self,
        postgres_url: str,
        should_autocreate_tables: bool = True,
        inst_data: ConfigurableClassData | None = None,
        token_provider: Any = None,
    ):
        super().__init__(postgres_url, should_autocreate_tables, inst_data, token_provider)
        self._engine.dispose()
        self._engine = create_pg_engine(
            self.postgres_url,
            self._token_provider,
            isolation_level="AUTOCOMMIT",
            pool_size=1,
            max_overflow=POOL_OVERFLOW,
            pool_recycle=POOL_RECYCLE_S,
            pool_pre_ping=True,
        )

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData | None, config_value: Mapping[str, Any]
    ) -> PooledPostgresEventLogStorage:
        return cls(
            pg_url_from_config(config_value),
            config_value.get("should_autocreate_tables", True),
            inst_data,
            get_token_provider_from_config(config_value),
        )

    def optimize_for_webserver(self, statement_timeout: int, pool_recycle: int, max_overflow: int) -> None:
        self._engine.dispose()  # the parent replaces the engine without closing this one's kept connection
        super().optimize_for_webserver(statement_timeout, pool_recycle, max_overflow)

    def dispose(self) -> None:
        super().dispose()
        self._engine.dispose()
