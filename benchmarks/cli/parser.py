"""The arguments of the ``primebench`` commands (the commands are in :mod:`benchmarks.cli.main`)."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping

from ..config.run_config import SCALES
from ..config.weights_section import WEIGHTS_MODES
from ..launch.preflight import CLUSTERS
from ..runtime.lease import IF_BUSY

__all__ = ["build_parser"]

_OUT_HELP = "reports go to OUT/<scale>/ (default: results, under the working directory)"
_DEBUG_HELP = (
    "on an error, print its traceback; a run that fails in this process (primebench run, "
    "--cluster debug) opens the pdb debugger. Without it no command waits for input"
)


def build_parser(
    commands: Mapping[str, Callable[[argparse.Namespace], int]],
) -> argparse.ArgumentParser:
    """The parser of every command; ``commands`` maps each name to its function."""
    parser = argparse.ArgumentParser(
        prog="primebench",
        description="Reproducibility suite for MDM-Prime (masked diffusion with partial masking).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--debug", action="store_true", help=_DEBUG_HELP)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    # --debug after the command too; SUPPRESS keeps a --debug given before it.
    flags = argparse.ArgumentParser(add_help=False)
    flags.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=_DEBUG_HELP)
    common = argparse.ArgumentParser(add_help=False, parents=[flags])
    common.add_argument(
        "--tracking-uri",
        help="MLflow store (default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db here)",
    )
    common.add_argument("--scale", default="cpu", choices=SCALES, help="default: cpu")

    running = argparse.ArgumentParser(add_help=False, parents=[common])
    running.add_argument("--runs-dir", default="runs", help="checkpoints and job logs")
    running.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override a setting, e.g. train.steps=100 (primebench explain EXPERIMENT "
        "lists every setting with its meaning)",
    )
    running.add_argument(
        "--weights",
        default="trained",
        choices=WEIGHTS_MODES,
        help="trained (default): each run trains its model, or reads the trained upstream "
        "run; released: each run evaluates the weights the authors published for its "
        "variant (the experiment file's weights:), without training (--scale paper)",
    )

    p = sub.add_parser(
        "list", parents=[flags], help="experiments, models, tasks and cluster profiles"
    )
    p.set_defaults(func=commands["list"])

    p = sub.add_parser("run", parents=[running], help="run an experiment in this process")
    p.add_argument("experiment")
    p.add_argument("--variant", action="append", help="only these variants (repeatable)")
    _add_if_busy(p)
    p.set_defaults(func=commands["run"])

    p = sub.add_parser("sweep", parents=[running], help="submit an experiment as a job array")
    p.add_argument("experiment")
    p.add_argument("--variant", action="append", help="only these variants (repeatable)")
    p.add_argument("--cluster", default="local", choices=CLUSTERS)
    _add_profiles(p)
    p.add_argument("--parallel", type=int, default=1, help="local: simultaneous processes")
    _add_dry_run(p)
    _add_if_busy(p)
    p.set_defaults(func=commands["sweep"])

    p = sub.add_parser("report", parents=[common], help="render tables and figures")
    p.add_argument("--out", default="results", help=_OUT_HELP)
    p.add_argument(
        "--weights",
        default="trained",
        choices=WEIGHTS_MODES,
        help="released: the runs of released weights, into OUT/<scale>-released/",
    )
    p.set_defaults(func=commands["report"])

    p = sub.add_parser(
        "reproduce", parents=[running], help="run every experiment of a scale, then report"
    )
    p.add_argument("--out", default="results", help=_OUT_HELP)
    p.add_argument("--cluster", default="local", choices=CLUSTERS)
    _add_profiles(p)
    p.add_argument(
        "--parallel",
        type=int,
        help="local: simultaneous processes, the cores split between them (default: 2 on "
        "2 or more cores per rank; on 2 cores that trains 1.3x the images/s of one "
        "process on both)",
    )
    p.add_argument("--wait", action="store_true", help="slurm: wait for the jobs, then report")
    _add_dry_run(p)
    _add_if_busy(p)
    p.set_defaults(func=commands["reproduce"])

    p = sub.add_parser("status", parents=[running], help="state of every run of a sweep")
    p.add_argument("experiment", nargs="?", help="default: every experiment of --scale")
    p.add_argument("--variant", action="append", help="only these variants (repeatable)")
    p.set_defaults(func=commands["status"])

    p = sub.add_parser(
        "explain",
        parents=[running],
        help="every setting of an experiment (or of task:NAME, model:NAME) with its meaning",
        description="Print the resolved settings, each with its meaning, type, allowed "
        "values and default; * marks values that differ from the default.",
    )
    p.add_argument("target", metavar="EXPERIMENT | task:NAME | model:NAME")
    p.add_argument("--variant", action="append", help="only these variants (repeatable)")
    p.set_defaults(func=commands["explain"])
    return parser


def _add_profiles(p: argparse.ArgumentParser) -> None:
    """A cluster profile per kind of job (benchmarks.launch.job_profiles)."""
    p.add_argument(
        "--profile",
        help="cluster profile under slurm/ (or a .yaml path) of training jobs, and of every "
        "job with --cluster local (required with --cluster slurm)",
    )
    p.add_argument(
        "--eval-profile",
        help="slurm: profile of evaluation-only jobs (released weights, an upstream run's "
        "checkpoints); default: gpu-1x if --profile holds GPUs, else --profile",
    )
    p.add_argument(
        "--cpu-profile",
        help="slurm: profile of jobs whose task needs no device (idle-steps), without GPUs; "
        "default: cpu if --profile holds GPUs, else --profile",
    )


def _add_dry_run(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--dry-run", action="store_true", help="list the jobs and their cost; submit nothing"
    )
    p.add_argument(
        "--step-time",
        type=float,
        metavar="SECONDS",
        help="dry run: seconds per step for runs without a measured one in the store",
    )


def _add_if_busy(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--if-busy",
        default="wait",
        choices=IF_BUSY,
        help="a run that another process is running: wait for it (default), or stop "
        "with a message naming that process",
    )
