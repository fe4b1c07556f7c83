"""Which failures are an outage that will pass (retry for as long as it lasts) and which are
a fault of the event itself (poison: retrying changes nothing)."""

# Exception classes are matched by module and name, so that this module imports none of the
# client libraries (a worker has no database driver, the backend no Kafka consumer of its own).
_TRANSIENT_NAMES = {
    # SQLAlchemy wraps driver errors; these two mean the server or the connection went away.
    ("sqlalchemy.exc", "OperationalError"),
    ("sqlalchemy.exc", "InterfaceError"),
    ("sqlalchemy.exc", "DisconnectionError"),
    ("sqlalchemy.exc", "TimeoutError"),
    # asyncpg, when not wrapped
    ("asyncpg.exceptions", "CannotConnectNowError"),
    ("asyncpg.exceptions", "ConnectionDoesNotExistError"),
    ("asyncpg.exceptions", "AdminShutdownError"),
    ("asyncpg.exceptions", "CrashShutdownError"),
    ("asyncpg.exceptions", "TooManyConnectionsError"),
    ("asyncpg.exceptions._base", "InterfaceError"),
    ("sqlite3", "OperationalError"),  # "database is locked"
    # minio / urllib3: the S3 server cannot be reached
    ("urllib3.exceptions", "MaxRetryError"),
    ("urllib3.exceptions", "ProtocolError"),
    ("urllib3.exceptions", "NewConnectionError"),
    ("urllib3.exceptions", "ReadTimeoutError"),
    ("minio.error", "ServerError"),
    # redis
    ("redis.exceptions", "ConnectionError"),
    ("redis.exceptions", "TimeoutError"),
    ("redis.exceptions", "BusyLoadingError"),
    # aiokafka
    ("aiokafka.errors", "KafkaConnectionError"),
    ("aiokafka.errors", "KafkaTimeoutError"),
    ("aiokafka.errors", "NodeNotReadyError"),
    ("aiokafka.errors", "RequestTimedOutError"),
    ("aiokafka.errors", "NotLeaderForPartitionError"),
    ("aiokafka.errors", "LeaderNotAvailableError"),
}

_DEPENDENCY_OF_MODULE = {
    "sqlalchemy": "database",
    "asyncpg": "database",
    "sqlite3": "database",
    "aiosqlite": "database",
    "urllib3": "storage",
    "minio": "storage",
    "redis": "state",
    "aiokafka": "bus",
}


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _is_transient_one(exc: BaseException) -> bool:
    # ConnectionError and TimeoutError are OSErrors; a missing or forbidden file is not an outage.
    if isinstance(exc, OSError) and not isinstance(exc, FileNotFoundError | PermissionError):
        return True
    for cls in type(exc).__mro__:
        if (cls.__module__, cls.__name__) in _TRANSIENT_NAMES:
            return True
    # SQLAlchemy marks errors after which the connection is unusable.
    return bool(getattr(exc, "connection_invalidated", False))


def is_transient(exc: BaseException) -> bool:
    """True when `exc`, or what caused it, is an outage rather than a bad event."""
    return any(_is_transient_one(e) for e in _chain(exc))


def dependency_of(exc: BaseException) -> str | None:
    """Which dependency an outage is in (database, storage, state, bus), when it can be told:
    by the error's class, or else by the client library it was raised in (asyncpg raises a
    plain ConnectionRefusedError when Postgres is down)."""
    for e in _chain(exc):
        if not _is_transient_one(e):
            continue
        for cls in type(e).__mro__:
            root = cls.__module__.split(".")[0]
            if root in _DEPENDENCY_OF_MODULE:
                return _DEPENDENCY_OF_MODULE[root]
    for e in _chain(exc):
        found = None
        traceback = e.__traceback__
        while traceback is not None:  # the innermost library frame decides
            module = str(traceback.tb_frame.f_globals.get("__name__", ""))
            found = _DEPENDENCY_OF_MODULE.get(module.split(".")[0], found)
            traceback = traceback.tb_next
        if found is not None:
            return found
    return None
