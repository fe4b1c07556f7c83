"""`bishop`: run Bishop embedded, or manage its database.

`bishop up` serves the API with SQLite, a local data folder, the in-process bus and in-process
state, and starts in the same process every other Bishop service that is installed (each one
registers itself under the `bishop.services` entry point group).
"""

import argparse
import asyncio
import logging
import os
import sys
from importlib.metadata import entry_points
from pathlib import Path

from bishop_backend.db import create_engine
from bishop_backend.main import create_app
from bishop_backend.migrations import autogenerate, upgrade
from bishop_backend.serving import Server
from bishop_backend.settings import Settings

log = logging.getLogger("bishop")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bishop", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser(
        "up", help="run every installed service in one process (embedded mode)"
    )
    up.add_argument("--host", default="127.0.0.1")
    up.add_argument("--port", type=int, default=8000)
    up.add_argument(
        "--data-dir", type=Path, default=None, help="where data is kept (default ./bishop-data)"
    )
    up.add_argument("--web-port", type=int, default=8080, help="the browser app's port")
    serve = commands.add_parser(
        "serve", help="run the backend alone, configured by BISHOP_* variables"
    )
    serve.add_argument("--host", default="0.0.0.0")
    serve.add_argument("--port", type=int, default=8000)
    db = commands.add_parser("db", help="database migrations")
    db.add_argument("action", choices=["upgrade", "revision"])
    db.add_argument("-m", "--message", default="schema change")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )

    if args.command == "up":
        if args.data_dir is not None:
            os.environ["BISHOP_DATA_DIR"] = str(args.data_dir)
        # Embedded means embedded for every service in the process, whatever `.env` says.
        os.environ.update(
            BISHOP_API_URL=f"http://{args.host}:{args.port}",
            BISHOP_FRONTEND_HOST=args.host,
            BISHOP_FRONTEND_PORT=str(args.web_port),
            BISHOP_ENVIRONMENT="local",
            BISHOP_SESSION_SECRET="",
            BISHOP_DATABASE_URL="",
            BISHOP_STORAGE_URL="",
            BISHOP_BUS_URL="memory://",
            BISHOP_STATE_URL="memory://",
        )
        settings = Settings()
        asyncio.run(_up(settings, args.host, args.port, args.web_port))
    elif args.command == "serve":
        settings = Settings()
        server = Server(create_app(settings), host=args.host, port=args.port, settings=settings)
        asyncio.run(server.serve())
    else:
        engine = create_engine(Settings().resolved_database_url)
        action = upgrade(engine) if args.action == "upgrade" else autogenerate(engine, args.message)
        asyncio.run(action)


async def _up(settings: Settings, host: str, port: int, web_port: int) -> None:
    server = Server(create_app(settings), host=host, port=port, settings=settings, log_level="info")
    services = [ep for ep in entry_points(group="bishop.services")]
    tasks = [asyncio.create_task(ep.load()(), name=ep.name) for ep in services]
    for task in tasks:
        task.add_done_callback(_report_exit)
    if any(ep.name == "frontend" for ep in services):
        print(f"Bishop (embedded): open http://{host}:{web_port}", flush=True)
    print(f"API: http://{host}:{port}  (docs: http://{host}:{port}/docs)", flush=True)
    print(f"Data folder: {settings.data_dir.resolve()}", flush=True)
    if services:
        print("Also running: " + ", ".join(ep.name for ep in services), flush=True)
    try:
        await server.serve()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _report_exit(task: asyncio.Task[None]) -> None:
    """A service of `bishop up` that stops says so where the user is looking: the console."""
    if task.cancelled():
        return
    error = task.exception()
    why = f"{type(error).__name__}: {error}" if error is not None else "it returned"
    bar = "!" * 78
    print(
        f"\n{bar}\n!! Bishop's {task.get_name()} service STOPPED: {why}\n"
        f"!! The rest keeps running; /api/v1/utils/health-check reports it down.\n{bar}\n",
        file=sys.stderr,
        flush=True,
    )
    if error is not None:
        log.error("%s stopped", task.get_name(), exc_info=error)
