"""The ``primebench`` command line.

primebench list                                   experiments, models, tasks, profiles
primebench run EXPERIMENT [--variant V] [--set k=v]   in this process
primebench sweep EXPERIMENT --cluster {debug,local,slurm} [--profile P] [--dry-run]
primebench report [--scale cpu] [--out DIR]       tables and figures under DIR/<scale>/
primebench reproduce [--scale cpu]               every experiment of a scale, then report
primebench reproduce --scale paper --cluster slurm --profile P   submit all (dependencies
                                                  between experiments) and exit [--dry-run]
    [--eval-profile E] [--cpu-profile C]          profiles of evaluation-only and CPU jobs
primebench status [EXPERIMENT] [--scale S]        state and step of every run, Slurm jobs
primebench explain EXPERIMENT | task:NAME | model:NAME   every setting, with its meaning

Errors are one line naming the setting or file, and nothing waits for input (``--debug``:
tracebacks, and pdb on a run that fails in this process; :mod:`benchmarks.cli.errors`).
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
import time
from collections.abc import Sequence

from ..config.experiments import Experiment, list_experiments, load_experiment
from ..core import ConfigError
from ..launch.dryrun import dry_run
from ..launch.job_errors import wait_jobs
from ..launch.job_profiles import JobProfiles, choose_profiles
from ..launch.launcher import launch
from ..launch.plan import plan_experiments, submit_plan
from ..launch.profiles import list_profiles
from ..launch.reproduction import (
    Reproduction,
    default_parallel,
    format_time_table,
    reproduce_in_process,
    reproduce_locally,
)
from ..launch.status import collect_status, format_status
from ..launch.submission import print_results
from ..registry import MODELS, TASKS
from ..reports.render import render_report
from .errors import parse_set, run_command
from .explain import explain_entry, explain_runs
from .parser import build_parser

__all__ = ["main", "COMMANDS"]


def _configs(args: argparse.Namespace, experiment: str) -> list:
    """The runs of one experiment (``--weights released``: of the variants with released
    weights, naming the others)."""
    if args.weights == "released" and not args.variant:
        (item,) = _plan(args, [experiment])
        return item.configs
    exp = load_experiment(experiment)
    return exp.resolve(args.scale, parse_set(args.set), args.variant, args.weights)


def _plan(args: argparse.Namespace, names: list[str], reproduction: bool = False) -> list:
    plan = plan_experiments(
        names,
        args.scale,
        parse_set(args.set),
        None if reproduction else args.variant,
        reproduction=reproduction,
        weights=args.weights,
    )
    if not getattr(args, "dry_run", False):  # a dry run lists them in its summary
        for line in (line for item in plan for line in item.unavailable):
            print(f"== left out: {line}")
    return plan


def _reproduced(exp: Experiment, scale: str) -> str:
    chosen = exp.reproduced(scale)
    return scale if chosen is None else f"{scale}: {len(chosen)} of {len(exp.variants)}"


def cmd_list(args: argparse.Namespace) -> int:
    print("experiments:")
    for name in list_experiments():
        exp = load_experiment(name)
        scales = ", ".join(_reproduced(exp, s) for s in exp.reproduce) or "-"
        print(f"  {name:<14} variants: {', '.join(exp.variants)}  (reproduce: {scales})")
    print("models:  " + ", ".join(MODELS.names()))
    print("tasks:   " + ", ".join(TASKS.names()))
    print("cluster profiles: " + ", ".join(list_profiles()))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    configs = _configs(args, args.experiment)
    results = launch(
        configs,
        "debug",
        tracking_uri=args.tracking_uri,
        runs_dir=args.runs_dir,
        if_busy=args.if_busy,
        post_mortem=args.debug,
    )
    print_results(results)
    return 0


def _profiles(args: argparse.Namespace) -> JobProfiles:
    """The profile of each kind of job (benchmarks.launch.job_profiles)."""
    if args.cluster == "slurm" and not args.profile:
        valid = ", ".join(list_profiles())
        raise ConfigError(f"--profile is required with --cluster slurm; valid: {valid}")
    return choose_profiles(args.cluster, args.profile, args.eval_profile, args.cpu_profile)


def _scale_experiments(scale: str) -> list[str]:
    return [n for n in list_experiments() if scale in load_experiment(n).reproduce]


def _dry_run(args: argparse.Namespace, plan: list) -> int:
    dry_run(
        plan,
        args.cluster,
        profiles=_profiles(args),
        tracking_uri=args.tracking_uri,
        step_time=args.step_time,
    )
    return 0


def _launch(args: argparse.Namespace, name: str, configs: list) -> list[dict]:
    profile = _profiles(args).main
    print(f"== {name}: {len(configs)} run(s) on {args.cluster}", flush=True)
    results = launch(
        configs,
        args.cluster,
        profile=profile,
        tracking_uri=args.tracking_uri,
        runs_dir=args.runs_dir,
        parallel=1 if args.parallel is None else args.parallel,  # unset: reproduce's default
        if_busy=args.if_busy,
        post_mortem=args.debug,
    )
    print_results(results)
    return results


def _report(args: argparse.Namespace, missing: Sequence[str] = ()) -> list:
    written = render_report(
        args.tracking_uri, args.scale, results_dir=args.out, missing=missing, weights=args.weights
    )
    if not written:
        print(f"no complete runs at scale {args.scale!r} in the tracking store")
    for title, path in written:
        print(f"  {path}  {title}")
    return written


def cmd_sweep(args: argparse.Namespace) -> int:
    if args.dry_run:
        return _dry_run(args, _plan(args, [args.experiment]))
    if args.cluster == "slurm":  # an array per profile of its jobs' kinds, then wait
        _submit_slurm(args, _plan(args, [args.experiment]), wait=True)
        return 0
    _launch(args, args.experiment, _configs(args, args.experiment))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    if args.variant and not args.experiment:
        raise ConfigError("--variant: name the experiment too, e.g. primebench status toy2d")
    names = [args.experiment] if args.experiment else _scale_experiments(args.scale)
    overrides = parse_set(args.set)
    configs = [
        c
        for n in names
        for c in load_experiment(n).resolve(args.scale, overrides, args.variant, args.weights)
    ]
    print(format_status(collect_status(configs, args.tracking_uri, args.runs_dir)))
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    kind, sep, name = args.target.partition(":")
    if sep and kind in ("task", "model"):
        print(explain_entry(kind, name), end="")
    else:
        print(explain_runs(_configs(args, args.target)), end="")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    _report(args)
    return 0


def _submit_slurm(args: argparse.Namespace, plan: list, wait: bool) -> bool:
    """Submit the plan to Slurm; True when ``wait`` (for its jobs, which it did)."""
    submissions = submit_plan(
        plan,
        "slurm",
        profiles=_profiles(args),
        tracking_uri=args.tracking_uri,
        runs_dir=args.runs_dir,
        if_busy=args.if_busy,
    )
    if wait:
        for name, submission in submissions.items():
            print(f"== waiting for {name}", flush=True)
            print_results(wait_jobs(submission, tracebacks=args.debug))
        return True
    follow = f"primebench status --scale {args.scale}"
    follow += f" --runs-dir {args.runs_dir}" if args.runs_dir != "runs" else ""
    follow += f" --tracking-uri {args.tracking_uri}" if args.tracking_uri else ""
    follow += "".join(f" --set {item}" for item in args.set or ())
    jobs = sum(len(s.jobs) for s in submissions.values())
    print(f"== submitted {jobs} job(s) of {len(plan)} experiment(s); not waiting for them")
    print(f"   follow them with: {follow}")
    print(f"   then render the tables with: primebench report --scale {args.scale}")
    return False


def cmd_reproduce(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    names = _scale_experiments(args.scale)
    plan = _plan(args, names, reproduction=True)
    if args.dry_run:
        return _dry_run(args, plan)
    done = Reproduction()
    if args.cluster == "slurm":
        if not _submit_slurm(args, plan, args.wait):
            return 0
    elif args.cluster == "local":
        profile = _profiles(args).main
        done = reproduce_locally(
            plan,
            profile=profile,
            tracking_uri=args.tracking_uri,
            runs_dir=args.runs_dir,
            parallel=default_parallel(profile) if args.parallel is None else args.parallel,
            if_busy=args.if_busy,
        )
    else:  # debug: in this process, one run after the other
        _profiles(args)  # refuses the flags of Slurm profiles
        done = reproduce_in_process(
            plan,
            tracking_uri=args.tracking_uri,
            runs_dir=args.runs_dir,
            if_busy=args.if_busy,
            post_mortem=args.debug,
        )
    # Variants without released weights are missing from a released reproduction too.
    done.missing[:0] = [line for item in plan for line in item.unavailable]
    print("== report")
    began = time.perf_counter()
    _report(args, done.missing)
    seconds = time.perf_counter() - began
    times = [*done.rows, ("report", 0, 0, seconds, seconds)]
    elapsed = time.perf_counter() - start
    print(f"== reproduced {', '.join(names)} at scale {args.scale} in {elapsed:.0f} s")
    if args.cluster != "slurm":  # on Slurm the jobs' time is the scheduler's
        print(format_time_table(times, elapsed))
    if done.missing:
        print(
            f"primebench: {len(done.missing)} run(s) missing from the report:\n  "
            + "\n  ".join(done.missing),
            file=sys.stderr,
        )
        return 1
    return 0


COMMANDS = {
    "list": cmd_list,
    "run": cmd_run,
    "sweep": cmd_sweep,
    "report": cmd_report,
    "reproduce": cmd_reproduce,
    "status": cmd_status,
    "explain": cmd_explain,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser(COMMANDS)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s: %(message)s",
    )
    again = shlex.join(["primebench", *(sys.argv[1:] if argv is None else argv)])
    return run_command(args, again)


if __name__ == "__main__":
    sys.exit(main())
