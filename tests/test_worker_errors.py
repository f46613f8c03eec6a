"""Which database errors a worker waits out and tries again: asyncpg's arrive wrapped in a
plain DBAPIError, and only their SQLSTATE tells a restarting server from a real fault."""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from bot.worker import is_transient


class DriverError(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__("driver says no")
        self.sqlstate = sqlstate


def wrapped(sqlstate: str) -> DBAPIError:
    return DBAPIError("SELECT 1", None, DriverError(sqlstate))


def test_a_restarting_or_unreachable_server_is_waited_out() -> None:
    for code in ("57P01", "57P02", "57P03", "08006", "08001", "53300"):
        assert is_transient(wrapped(code)), code
    assert is_transient(OperationalError("SELECT 1", None, DriverError("XX000")))
    assert is_transient(PoolTimeout())
    assert is_transient(ConnectionRefusedError())


def test_faults_in_the_data_or_the_code_are_not_retried() -> None:
    for code in ("23505", "42P01", "22001", "40001"):
        assert not is_transient(wrapped(code)), code
    assert not is_transient(IntegrityError("INSERT", None, DriverError("23505")))
    assert not is_transient(ValueError("a bug"))
    assert not is_transient(DBAPIError("SELECT 1", None, Exception("no code")))
