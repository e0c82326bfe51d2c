"""Errors of the ``primebench`` command as one line naming the setting or file.

Every error the suite expects (a bad setting or file, a store it cannot use, a run held
by another process, a failed job) is printed as ``primebench: error: <line>`` and exits
2; anything else is a fault of the suite, printed as ``primebench: internal error:
<Type>: <message>`` and exiting 1. The traceback is printed only with ``--debug``.
Nothing here waits for input: a command run from a script, a pipe or ``nohup`` ends.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import traceback
from pathlib import Path
from typing import Any

import yaml

from ..config.overrides import parse_overrides
from ..config.yaml_io import yaml_problem
from ..core import ConfigError
from ..launch.submission import SweepInterrupted
from ..runtime.preemption import Interrupted, Terminated

__all__ = [
    "EXIT_ERROR",
    "EXIT_INTERNAL",
    "parse_set",
    "check_arguments",
    "error_line",
    "report_error",
]

EXIT_ERROR = 2
EXIT_INTERNAL = 1
# The URI schemes MLflow has a tracking store for (``file`` is refused by the suite's
# own check, with its reason); "postgresql+psycopg2" counts as "postgresql".
_TRACKING_SCHEMES = ("sqlite", "http", "https", "postgresql", "mysql", "mssql", "databricks")
# Commands that open the tracking store.
_STORE_COMMANDS = ("run", "sweep", "report", "reproduce", "status")


def parse_set(items: list[str] | None) -> dict[str, Any]:
    """:func:`benchmarks.config.overrides.parse_overrides`; a value that is not YAML is a
    ConfigError naming the ``--set`` item."""
    for item in items or []:
        try:
            parse_overrides([item])
        except yaml.YAMLError as err:
            raise ConfigError(f"--set {item!r}: not valid YAML: {yaml_problem(err)}") from err
    return parse_overrides(items)


def _check_directory(option: str, value: str) -> None:
    """``value`` is a directory, or can be made one: nothing on its path is a file."""
    path = Path(value)
    for part in (path, *path.parents):
        if os.path.lexists(part):
            if not part.is_dir():
                what = "is" if part == path else f"is under {part}, which is"
                raise ConfigError(f"{option} {value}: {what} not a directory")
            return


def _check_tracking_uri(args: argparse.Namespace) -> None:
    """The tracking URI names a store MLflow has (before any store is opened)."""
    uri = args.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    if not uri or "://" not in uri:
        return  # the default store, or a path: the tracking module's checks say more
    scheme = uri.split("://", 1)[0].split("+", 1)[0].lower()
    if scheme == "file" or scheme in _TRACKING_SCHEMES:
        return
    source = "--tracking-uri" if args.tracking_uri else "MLFLOW_TRACKING_URI"
    raise ConfigError(
        f"{source} {uri!r}: MLflow has no tracking store for {scheme}:// URIs; use "
        "sqlite:///path/to/mlflow.db or an http(s)://host:port server"
    )


def check_arguments(args: argparse.Namespace) -> None:
    """Checks of the command line that need nothing opened: ``--runs-dir`` and
    ``--out`` are not files, the tracking URI is one MLflow can use."""
    for option in ("runs_dir", "out"):
        value = getattr(args, option, None)
        if value:
            _check_directory("--" + option.replace("_", "-"), value)
    if args.command in _STORE_COMMANDS:
        _check_tracking_uri(args)


def _message(err: BaseException) -> str:
    return str(err) or type(err).__name__


def error_line(err: BaseException) -> str | None:
    """The message of an error the suite expects, or None for an internal error.

    Expected: the suite's own error classes (their messages name the setting or file),
    file-system errors (named by their file), YAML errors (by file, line and column),
    and MLflow's errors about its store."""
    module = type(err).__module__
    if module == "benchmarks" or module.startswith("benchmarks."):
        return _message(err)
    if isinstance(err, OSError):
        why = err.strerror or _message(err)
        return f"{err.filename}: {why}" if err.filename is not None else why
    if isinstance(err, yaml.YAMLError):
        mark = getattr(err, "problem_mark", None)
        where = f"{mark.name}: " if mark is not None else ""
        return f"{where}not valid YAML: {yaml_problem(err)}"
    if module.startswith("mlflow."):
        lines = _message(err).strip().splitlines()
        return f"MLflow: {lines[0].strip() if lines else type(err).__name__}"
    return None


def report_error(err: BaseException, debug: bool = False) -> int:
    """Print ``err`` (its traceback first with ``debug``); the exit code."""
    if debug:
        traceback.print_exception(err)
    line = error_line(err)
    if line is not None:
        print(f"primebench: error: {line}", file=sys.stderr)
        return EXIT_ERROR
    message = " ".join(_message(err).split())
    hint = "" if debug else " (run again with --debug for the traceback)"
    print(f"primebench: internal error: {type(err).__name__}: {message}{hint}", file=sys.stderr)
    return EXIT_INTERNAL


def run_command(args: argparse.Namespace, again: str) -> int:
    """Run the parsed command ``args.func``; its exit status. A stop by the user or the
    scheduler prints what was saved and how to resume (``again``: the command line to
    run again); any other error is one line (:func:`report_error`)."""
    try:
        check_arguments(args)
        return args.func(args)
    except SweepInterrupted as stop:
        print(
            "primebench: interrupted:" + "".join(f"\n  {line}" for line in stop.lines()),
            file=sys.stderr,
        )
        print(f"primebench: to resume, run the same command: {again}", file=sys.stderr)
        return 130
    except Interrupted as stop:
        print(
            f"primebench: interrupted at step {stop.step}: checkpoint {stop.checkpoint} saved "
            "and the MLflow run marked interrupted; run it again to resume",
            file=sys.stderr,
        )
        return 130
    except KeyboardInterrupt:
        print(
            "primebench: interrupted; runs stopped in training saved a checkpoint and are "
            "marked interrupted; run it again to resume",
            file=sys.stderr,
        )
        return 130
    except Terminated:
        print(
            "primebench: terminated (SIGTERM); the run stopped is marked interrupted; run it "
            "again to resume",
            file=sys.stderr,
        )
        return 128 + signal.SIGTERM
    except Exception as err:  # noqa: BLE001 - one line, the traceback only with --debug
        return report_error(err, args.debug)
