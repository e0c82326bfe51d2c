import subprocess
import sys
from dataclasses import dataclass

import pytest
import submitit

from benchmarks.config.experiments import list_experiments, load_experiment
from benchmarks.config.overrides import parse_overrides
from benchmarks.config.run_config import RunConfig
from benchmarks.config.validation import build_dataclass
from benchmarks.core import ConfigError
from benchmarks.launch.launcher import _executor
from benchmarks.launch.profiles import list_profiles, load_profile
from benchmarks.registry import MODELS, TASKS, Registry


def test_every_experiment_file_resolves_at_every_scale_it_names():
    names = list_experiments()
    assert {"idle-steps", "toy2d"} <= set(names)
    for name in names:
        exp = load_experiment(name)
        for scale in {"cpu", *exp.reproduce, *exp.scales}:
            configs = exp.resolve(scale)
            # a same_as variant is the other experiment's run, under that run's name
            names = [exp.shared.get(v, (name, v))[1] for v in exp.variants]
            assert [c.variant for c in configs] == names
            assert len({c.run_id for c in configs}) == len(configs)


def test_every_cluster_profile_builds_a_submitit_executor(tmp_path, monkeypatch):
    # submitit checks every parameter name when the executor is configured; building one
    # needs no cluster (the one-node Slurm tests run in test_slurm.py).
    monkeypatch.setattr(submitit.SlurmExecutor, "affinity", classmethod(lambda cls: 1))
    for name in list_profiles():
        executor = _executor("slurm", tmp_path, load_profile(name), after=["123"])
        assert executor._executor.max_num_timeout == load_profile(name).max_requeues


def test_every_cluster_profile_is_valid():
    assert "local-test" in list_profiles()
    for name in list_profiles():
        profile = load_profile(name)
        params = profile.executor_parameters("slurm")
        assert params["cpus_per_task"] >= 1
        # One rank per GPU: Slurm starts as many tasks as the node has GPUs.
        assert params["tasks_per_node"] == (profile.gpus_per_node or profile.ranks_per_node or 1)
        assert params["slurm_signal_delay_s"] < 60 * params["timeout_min"]


def test_errors_name_the_field_and_the_allowed_values():
    exp = load_experiment("toy2d")
    with pytest.raises(
        ConfigError, match=r"model\.decoder: expected one of 'joint', 'independent'"
    ):
        exp.resolve("cpu", parse_overrides(["model.decoder=both"]), ["prime-l2-joint"])
    with pytest.raises(ConfigError, match=r"train\.steps: expected an integer, got 'many'"):
        exp.resolve("cpu", parse_overrides(["train.steps=many"]))
    with pytest.raises(ConfigError, match=r"unknown setting\(s\) lr.*valid settings: .*steps"):
        exp.resolve("cpu", parse_overrides(["train.lr=1", "train.lrr=2"]))
    valid_models = r"unknown model 'gpt'; valid: ar, bd3lm, mdm, mdm-mixture, prime"
    with pytest.raises(ConfigError, match=valid_models):
        exp.resolve("cpu", parse_overrides(["model.name=gpt"]))
    with pytest.raises(ConfigError, match=r"scale: expected one of cpu, paper"):
        exp.resolve("laptop")
    with pytest.raises(ConfigError, match=r"unknown experiment 'nope'; valid: .*toy2d"):
        load_experiment("nope")
    with pytest.raises(ConfigError, match=r"train\.ema: must be in \(0, 1\)"):
        exp.resolve("cpu", parse_overrides(["train.ema=1.5"]))
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        parse_overrides(["train.steps"])
    with pytest.raises(ConfigError, match=r"unknown cluster profile 'mars'; valid: .*local-test"):
        load_profile("mars")


def test_overrides_are_parsed_as_yaml_values():
    assert parse_overrides(["a.b=3", "a.c=[1, 2]", "d=true", "e=0.5", "f=text"]) == {
        "a": {"b": 3, "c": [1, 2]},
        "d": True,
        "e": 0.5,
        "f": "text",
    }


def test_numbers_without_a_dot_or_an_exponent_sign_are_numbers():
    # YAML 1.1 (PyYAML's default) reads 1e-5 and 3E4 as strings; a learning rate set so
    # must reach the config as the float it is, in overrides and in experiment files.
    parsed = parse_overrides(["train.min_lr=1e-5", "a=3E4", "b=-2.5e+3", "c=.5", "d=100"])
    assert parsed == {"train": {"min_lr": 1e-5}, "a": 3e4, "b": -2500.0, "c": 0.5, "d": 100}
    assert isinstance(parsed["d"], int)
    exp = load_experiment("toy2d")
    (cfg,) = exp.resolve("cpu", variants=["mdm"], overrides={"train": parsed["train"]})
    assert cfg.train.min_lr == 1e-5


def test_run_id_changes_with_any_setting_and_round_trips():
    exp = load_experiment("toy2d")
    (base,) = exp.resolve("cpu", variants=["prime-l2-joint"])
    assert RunConfig.from_dict(base.to_dict()) == base
    assert RunConfig.from_dict(base.to_dict()).run_id == base.run_id
    seen = {base.run_id}
    for override in (
        "train.steps=7",
        "model.backbone.hidden=7",
        "task.sample_steps=7",
        "seed=7",
        "model.carry_over=false,model.masking=independent",
        "model.masking=independent",
        "train.lr=0.002",
    ):
        sets = parse_overrides(override.split(","))
        (changed,) = exp.resolve("cpu", sets, ["prime-l2-joint"])
        assert changed.run_id not in seen, override
        seen.add(changed.run_id)
    (paper,) = exp.resolve("paper", variants=["prime-l2-joint"])
    assert paper.run_id not in seen


@pytest.mark.slow  # two fresh interpreters: ~10 s
def test_run_id_is_stable_across_processes():
    code = (
        "from benchmarks.config.experiments import load_experiment;"
        "print(' '.join(c.run_id for c in load_experiment('toy2d').resolve('cpu')))"
    )
    ids = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": seed, "PATH": ""},
        ).stdout
        for seed in ("1", "2")
    }
    assert len(ids) == 1
    here = " ".join(c.run_id for c in load_experiment("toy2d").resolve("cpu"))
    assert ids == {here + "\n"}


def test_a_new_variant_is_one_class_and_one_decorator():
    registry = Registry("widget")

    @registry.register("w")
    class Widget:
        @dataclass(frozen=True)
        class Params:
            size: int = 1

    assert registry.get("w") is Widget and registry.names() == ["w"]
    assert build_dataclass(Widget.Params, {"size": 3}, "widget").size == 3
    with pytest.raises(ConfigError, match="unknown widget 'v'; valid: w"):
        registry.get("v")
    assert "prime" in MODELS and "mdm" in MODELS
    assert "toy2d" in TASKS and "idle-steps" in TASKS
