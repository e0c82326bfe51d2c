"""Experiment files: grids, upstream sections, plugins (the parsing; runs elsewhere)."""

from __future__ import annotations

from dataclasses import replace

import pytest
import yaml

from benchmarks.config.experiments import load_experiment, resolve_variant, upstream_config
from benchmarks.config.overrides import expand_grid
from benchmarks.core import ConfigError
from benchmarks.launch.plan import plan_experiments
from benchmarks.reports.context import ReportContext

TOY = yaml.safe_load(load_experiment("toy2d").path.read_text())


def _write(tmp_path, **doc):
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump({"defaults": TOY["defaults"], **doc}, sort_keys=False))
    return load_experiment(path)


def test_a_grid_multiplies_the_variants_by_every_combination(tmp_path):
    grid = {"model.ell": [2, 4], "model.carry_over": [True, False]}
    exp = _write(
        tmp_path, variants={"joint": {}, "indep": {"model": {"decoder": "independent"}}}, grid=grid
    )
    assert list(exp.variants) == [
        f"{v}-ell{e}-{c}"
        for v in ("joint", "indep")
        for e in (2, 4)
        for c in ("carry_over", "no_carry_over")
    ]
    configs = {c.variant: c for c in exp.resolve("cpu")}
    point = configs["indep-ell4-no_carry_over"].model.params
    assert (point.ell, point.carry_over, point.decoder) == (4, False, "independent")
    assert len({c.run_id for c in configs.values()}) == 8
    # Without variants the points are the variants.
    alone = _write(tmp_path, grid={"seed": [0, 1, 2]})
    assert [c.seed for c in alone.resolve("cpu")] == [0, 1, 2]
    assert list(alone.variants) == ["seed0", "seed1", "seed2"]


def test_grid_errors_name_the_axis(tmp_path):
    with pytest.raises(ConfigError, match=r"grid.model.ell: expected a non-empty list"):
        _write(tmp_path, grid={"model.ell": 2})
    with pytest.raises(ConfigError, match=r"grid.model.ell: expected a non-empty list"):
        _write(tmp_path, grid={"model.ell": []})
    with pytest.raises(ConfigError, match=r"model\.ell: expected an integer"):
        _write(tmp_path, grid={"model.ell": ["two"]}).resolve("cpu")
    with pytest.raises(ConfigError, match=r"unknown key\(s\) grids"):
        _write(tmp_path, grids={})
    assert expand_grid({"a": {}}, {}, "x", named=True) == {"a": {}}


def test_upstream_sections_resolve_to_the_trained_runs():
    configs = load_experiment("nfe-sweep").resolve("paper")
    by_variant = {c.variant: c for c in configs}
    cell = by_variant["cifar10-l2-nfe256"]
    assert cell.model is None and cell.upstream.experiment == "ell-sweep"
    trained = upstream_config(cell)
    assert (trained.experiment, trained.variant, trained.model.params.ell) == (
        "ell-sweep",
        "cifar10-l2",
        2,
    )
    (table2,) = load_experiment("table2").resolve("paper", variants=["bd3lm-l4"])
    assert upstream_config(table2).experiment == "table1-hybrid"
    assert upstream_config(table2).variant == "bd3lm-l4"  # the variant of the same name


def test_upstream_errors_name_the_section(tmp_path):
    (cell,) = load_experiment("nfe-sweep").resolve("paper", variants=["cifar10-l2-nfe256"])
    raw = cell.to_dict()
    with pytest.raises(ConfigError, match=r"model: must be null when upstream is set"):
        type(cell).from_dict({**raw, "model": {"name": "mdm"}})
    with pytest.raises(ConfigError, match=r"upstream.experiment: required setting is missing"):
        type(cell).from_dict({**raw, "upstream": {"variant": "x"}})
    broken = type(cell).from_dict(
        {**raw, "upstream": {"experiment": "ell-sweep", "variant": "nope"}}
    )
    with pytest.raises(ConfigError, match=r"upstream \(ell-sweep/nope\): .*no variant\(s\) nope"):
        upstream_config(broken)


def test_evaluation_tasks_refuse_an_upstream_they_cannot_read():
    from benchmarks.registry import TASKS

    (zs,) = load_experiment("table2").resolve("paper", variants=["mdlm"])
    trained = upstream_config(zs)
    task = TASKS.get("text-zero-shot")(replace(zs.task.params, tokenizer="bytes"), zs)
    with pytest.raises(ConfigError, match=r"task.tokenizer: 'bytes' differs .*'gpt2'"):
        task.check_upstream(trained)
    TASKS.get("text-zero-shot")(zs.task.params, zs).check_upstream(trained)
    (cell,) = load_experiment("nfe-sweep").resolve("paper", variants=["cifar10-l2-nfe256"])
    task = TASKS.get("image-checkpoint")(replace(cell.task.params, dataset="imagenet32"), cell)
    with pytest.raises(ConfigError, match=r"task.dataset: 'imagenet32' differs"):
        task.check_upstream(upstream_config(cell))


def test_seeds_give_one_run_per_training_seed_under_one_variant_name(tmp_path):
    exp = _write(tmp_path, variants={"a": {"seeds": [3, 1, 2]}, "b": {}})
    configs = exp.resolve("cpu")
    assert [(c.variant, c.seed) for c in configs] == [("a", 3), ("a", 1), ("a", 2), ("b", 0)]
    assert len({c.run_id for c in configs}) == 4
    # --set seed=N picks one seed; --set seeds=[...] gives every variant those seeds.
    assert [(c.variant, c.seed) for c in exp.resolve("cpu", {"seed": 5})] == [("a", 5), ("b", 5)]
    many = exp.resolve("cpu", {"seeds": [7, 8]})
    assert [(c.variant, c.seed) for c in many] == [("a", 7), ("a", 8), ("b", 7), ("b", 8)]
    # The run at one seed is the run that seed alone gives.
    (alone,) = exp.resolve("cpu", {"seed": 1}, ["a"])
    assert configs[1].run_id == alone.run_id

    assert resolve_variant(str(exp.path), "cpu", {}, "a", 2).run_id == configs[2].run_id
    assert resolve_variant(str(exp.path), "cpu", {}, "b", 9).seed == 0  # one seed: that one
    with pytest.raises(ConfigError, match="a has runs at seeds 3, 1, 2, none at seed 9"):
        resolve_variant(str(exp.path), "cpu", {}, "a", 9)


@pytest.mark.parametrize("seeds", [[], [1, 1], ["x"], 3, [True]])
def test_bad_seeds_name_the_field(tmp_path, seeds):
    exp = _write(tmp_path, variants={"a": {"seeds": seeds}})
    with pytest.raises(ConfigError, match=r"grid.yaml \[a, cpu\]: seeds: expected a non-empty"):
        exp.resolve("cpu")


def test_report_rows_carry_the_seed_only_when_a_variant_has_several(tmp_path):
    exp = _write(tmp_path, variants={"a": {"seeds": [0, 1]}, "b": {}})
    configs = {f"r{i}": c for i, c in enumerate(exp.resolve("cpu"))}
    ctx = ReportContext("cpu", tmp_path, runs=None, client=None, configs=configs)
    names = [ctx.run_name(c) for c in configs.values()]
    assert names == ["a (seed 0)", "a (seed 1)", "b"]
    assert ctx.run_name(configs["r1"], "Model A") == "Model A (seed 1)"


def test_reproduce_names_the_variants_a_reproduction_runs_at_each_scale(tmp_path):
    variants = {"a": {}, "b": {}, "c": {}}
    every = _write(tmp_path, reproduce=["cpu"], variants=variants)
    assert "cpu" in every.reproduce and every.reproduced("cpu") is None
    some = _write(tmp_path, reproduce={"cpu": ["c", "a"], "paper": None}, variants=variants)
    assert some.reproduced("cpu") == ["c", "a"] and some.reproduced("paper") is None
    assert [c.variant for c in some.resolve("cpu", None, some.reproduced("cpu"))] == ["c", "a"]
    # The paper's claims at the cpu scale; the other variants stay runnable on request.
    (table1,) = plan_experiments(["table1-cpu"], "cpu", reproduction=True)
    assert [c.variant for c in table1.configs] == ["ar", "mdlm", "prime-l2"]
    # BD3-LM fine-tunes table1-cpu's MDLM: its own file runs it after table1-cpu
    table1, hybrid = plan_experiments(["table1-hybrid-cpu", "table1-cpu"], "cpu", reproduction=True)
    assert [c.variant for c in hybrid.configs] == ["bd3lm-l4"] and hybrid.upstream == (table1.name,)
    (every_variant,) = plan_experiments(["table1-cpu"], "cpu")
    assert len(every_variant.configs) == len(load_experiment("table1-cpu").variants) == 6


@pytest.mark.parametrize(
    "reproduce, expected",
    [
        ({"gpu": None}, "reproduce: unknown scale 'gpu'"),
        ({"cpu": ["a", "z"]}, "reproduce.cpu: expected a non-empty list of this file's variants"),
        ({"cpu": []}, "reproduce.cpu: expected a non-empty list"),
        ({"cpu": "a"}, "reproduce.cpu: expected a non-empty list"),
        ("cpu", "reproduce: expected a list of scales or a mapping"),
    ],
)
def test_bad_reproduce_fields_name_the_file_and_the_field(tmp_path, reproduce, expected):
    with pytest.raises(ConfigError, match="grid.yaml: " + expected.replace(".", r"\.")):
        _write(tmp_path, reproduce=reproduce, variants={"a": {}, "b": {}})
