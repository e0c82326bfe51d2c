"""Experiments that evaluate the same model share its run: a ``same_as`` variant is the
other experiment's run (same config, same run id), and a plan trains it once."""

from __future__ import annotations

import pytest

from benchmarks.config.experiments import load_experiment
from benchmarks.core import ConfigError
from benchmarks.launch.plan import plan_experiments


def test_a_same_as_variant_is_the_other_experiments_run():
    (shared,) = load_experiment("table3").resolve("paper", None, ["cifar10-mdm"])
    (own,) = load_experiment("ell-sweep").resolve("paper", None, ["cifar10-l1"])
    assert shared == own and shared.run_id == own.run_id
    assert (shared.experiment, shared.variant) == ("ell-sweep", "cifar10-l1")
    # overrides reach the shared run as they reach the experiment's own runs
    (more,) = load_experiment("table3").resolve("paper", {"seed": 3}, ["cifar10-mdm"])
    assert more.seed == 3 and more.run_id != own.run_id


def test_a_plan_trains_every_shared_run_once():
    plan = plan_experiments(["table3", "nfe-sweep", "ell-sweep"], "paper", reproduction=True)
    ids = [c.run_id for item in plan for c in item.configs]
    assert len(ids) == len(set(ids))
    items = {item.name: item for item in plan}
    table3 = items["table3"]
    assert sorted(c.variant for c in table3.configs) == [
        "cifar10-mdm-mixture",
        "imagenet32-mdm-mixture",
    ]
    shared = {v: f"{c.experiment}/{c.variant}" for v, c in table3.shared}
    assert shared == {
        "cifar10-mdm": "ell-sweep/cifar10-l1",
        "cifar10-prime-l2": "ell-sweep/cifar10-l2",
        "imagenet32-mdm": "nfe-sweep/imagenet32-l1-nfe1024",
        "imagenet32-prime-l2": "nfe-sweep/imagenet32-l2-nfe1024",
    }
    assert all(run_id in ids for run_id in (c.run_id for _, c in table3.shared))
    # alone, table3 runs the shared runs itself and needs ell-sweep's checkpoints
    (alone,) = plan_experiments(["table3"], "paper", reproduction=True)
    assert len(alone.configs) == 6 and not alone.shared and alone.external == ("ell-sweep",)


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ("{same_as: ell-sweep/cifar10-l1, seed: 2}", "nothing beside it"),
        ("{same_as: ell-sweep}", "'experiment/variant'"),
        ("{same_as: ell-sweep/nope}", "expected a variant that ell-sweep runs itself"),
        ("{same_as: nfe-sweep/cifar10-l1-nfe512}", "cifar10-l1-nfe128"),
        ("{same_as: nowhere/x}", "unknown experiment 'nowhere'"),
    ],
)
def test_a_bad_same_as_is_named(tmp_path, body, needle):
    path = tmp_path / "mine.yaml"
    path.write_text(
        "defaults: {task: {name: toy2d}, model: {name: prime}}\n"
        f"variants:\n  copy: {body}\n  own: {{}}\n"
    )
    with pytest.raises(ConfigError, match="variants.copy|unknown experiment") as err:
        load_experiment(path)
    assert needle in str(err.value)
