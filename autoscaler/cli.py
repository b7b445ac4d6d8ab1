"""The ``autoscaler`` command: ``serve``, ``validate`` and ``simulate``."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from types import FrameType
from typing import Any

from pydantic import ValidationError

from autoscaler.settings import LogSettings, Settings


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message (and exception)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def configure_logging(settings: LogSettings) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if settings.json_format:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.level)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="autoscaler", description="Horizontal, metrics-driven autoscaler for node groups."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the service")
    mode = serve.add_mutually_exclusive_group(required=True)
    mode.add_argument(
        "--config", nargs="+", metavar="PATH", help="spec files or folders (standalone)"
    )
    mode.add_argument("--kubernetes", action="store_true", help="read custom resources in-cluster")
    serve.add_argument(
        "--kubeconfig",
        metavar="PATH",
        help="kubeconfig file (with --kubernetes; default in-cluster)",
    )
    serve.add_argument("--host", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to bind (default 8080)")
    serve.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    serve.add_argument("--log-json", action="store_true", help="structured JSON log lines")
    serve.add_argument(
        "--dry-run",
        action="store_true",
        help="decide and record everything but never resize a node group",
    )
    serve.add_argument(
        "--state-file", metavar="PATH", help="keep autoscaler history across restarts (standalone)"
    )

    validate = commands.add_parser("validate", help="check spec files; exit 1 on any error")
    validate.add_argument("paths", nargs="+", metavar="PATH")

    simulate = commands.add_parser("simulate", help="replay a workload against the control loop")
    simulate.add_argument("--scenario", required=True)
    simulate.add_argument("--config", required=True)
    simulate.add_argument("--json", action="store_true")
    simulate.add_argument("--report")
    return parser


def cmd_validate(paths: Sequence[str]) -> int:
    from autoscaler.config import load_paths

    result = load_paths(paths)
    for issue in result.issues:
        print(issue)
    if result.issues:
        print(f"{len(result.issues)} problem(s) found", file=sys.stderr)
        return 1
    specs = result.specs
    print(
        f"ok: {len(specs.node_groups)} node groups, {len(specs.producers)} producers, "
        f"{len(specs.autoscalers)} autoscalers"
    )
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        settings = Settings()
    except ValidationError as exc:
        for error in exc.errors():
            field = "__".join(str(part).upper() for part in error["loc"])
            print(f"autoscaler: setting AUTOSCALER_{field}: {error['msg']}", file=sys.stderr)
        return 2
    if args.host:
        settings.server.host = args.host
    if args.port is not None:
        settings.server.port = args.port
    if args.log_level:
        settings.log.level = args.log_level
    if args.log_json:
        settings.log.json_format = True
    if args.dry_run:
        settings.loop.dry_run = True
    if args.state_file:
        settings.state.file = args.state_file
    if args.kubeconfig:
        if not args.kubernetes:
            print("autoscaler: --kubeconfig needs --kubernetes", file=sys.stderr)
            return 2
        settings.kubernetes.kubeconfig = args.kubeconfig
    configure_logging(settings.log)

    import uvicorn

    from autoscaler.errors import AutoscalerError
    from autoscaler.kube.service import ClusterService
    from autoscaler.server import create_app
    from autoscaler.service import Service

    service = ClusterService(settings) if args.kubernetes else Service(settings, args.config)
    try:
        service.start()
    except AutoscalerError as exc:
        print(f"autoscaler: {exc}", file=sys.stderr)
        return 2
    config = uvicorn.Config(
        create_app(service),
        host=settings.server.host,
        port=settings.server.port,
        log_level="warning",
        access_log=False,
    )
    server = uvicorn.Server(config)
    logging.getLogger("autoscaler").info(
        "serving on http://%s:%d", settings.server.host, settings.server.port
    )

    def _terminate(signum: int, _frame: FrameType | None) -> None:
        logging.getLogger("autoscaler").info("signal %d: shutting down", signum)
        server.should_exit = True

    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGINT, _terminate)
    try:
        server.run()
    finally:
        service.stop()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "validate":
        return cmd_validate(args.paths)
    if args.command == "serve":
        return cmd_serve(args)
    from autoscaler.simulator.run import command

    return command(args.scenario, args.config, json_output=args.json, report=args.report)


if __name__ == "__main__":
    sys.exit(main())
