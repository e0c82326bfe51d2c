"""The text task's judge setting: its validation, the errors that name what is missing
before training or sampling, and the plan that trains a judge run before the runs it
judges."""

from __future__ import annotations

import sys

import huggingface_hub.constants
import pytest
import torch

from benchmarks.config.experiments import list_experiments, load_experiment
from benchmarks.config.run_config import ComponentConfig
from benchmarks.config.validation import build_dataclass
from benchmarks.core import ConfigError, EvalContext
from benchmarks.launch.plan import plan_experiments, stages, upstream_of
from benchmarks.metrics.judge import JudgeUnavailableError
from benchmarks.tasks.text import TextLM
from benchmarks.tasks.text_judge import check_judge
from benchmarks.tasks.text_params import TextLMParams
from tests.benchmarks.tasks.judge_stand_in import judge_spec, random_judge_model, save_judge
from tests.hub_cache import fill_cache

NEW_FIELDS = ("judge", "judge_revision", "judge_batch", "judge_group", "mauve_references")


def _table1_cpu(variant: str = "mdlm", **task):
    overrides = {"task": {"block_size": 32, "eval_blocks": 2, "sample_count": 2, **task}}
    (config,) = load_experiment("table1-cpu").resolve("cpu", overrides, [variant])
    return config


def test_the_new_fields_leave_existing_run_ids_alone_at_their_defaults():
    assert set(NEW_FIELDS) <= set(TextLMParams.LATER_FIELDS)
    stored = ComponentConfig("text-lm", TextLMParams()).to_dict()
    assert not set(NEW_FIELDS) & set(stored)
    judged = ComponentConfig("text-lm", TextLMParams(judge="gpt2-large")).to_dict()
    assert judged["judge"] == "gpt2-large" and "judge_batch" not in judged


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"judge": "run:text-judge"}, "task.judge: expected null, a hub model id"),
        ({"judge": "run:/ar-judge"}, "task.judge: expected null"),
        ({"judge": "run:a/b/c"}, "task.judge: expected null"),
        ({"judge": " gpt2-large"}, "task.judge: expected null"),
        ({"judge": ""}, "task.judge: expected null"),
        ({"judge": "gpt2-large", "judge_batch": 0}, "task.judge_batch: must be >= 1"),
        ({"judge": "gpt2-large", "judge_group": -1}, "task.judge_group: must be >= 0"),
        ({"judge": "gpt2-large", "mauve_references": -1}, "task.mauve_references: must be"),
        ({"judge": "gpt2-large", "mauve_references": 8, "sample_count": 1}, "2 samples"),
        ({"judge": "gpt2-large", "mauve_references": 1}, "task.mauve_references: MAUVE needs"),
        ({"judge": "run:e/v", "judge_revision": "abc"}, "task.judge_revision: a hub judge's"),
    ],
)
def test_bad_judge_settings_name_the_field(settings, message):
    with pytest.raises(ConfigError, match=message):
        build_dataclass(TextLMParams, settings, "task")


def test_a_judge_names_a_hub_model_or_a_run():
    assert TextLMParams(judge="run:text-judge/ar-judge").judge_run == ("text-judge", "ar-judge")
    assert TextLMParams(judge="openai-community/gpt2-large").judge_run is None
    assert TextLMParams(sample_count=2, sample_batch=4).sample_batch == 4  # one call
    # no judge, no sample quality: a MAUVE count is left unused, whatever the samples
    assert TextLMParams(sample_count=1, mauve_references=64).judge is None


def test_a_judge_run_makes_its_experiment_an_upstream():
    configs = load_experiment("table1-cpu").resolve("cpu")
    assert "text-judge" in upstream_of(configs)
    assert "text-judge" not in upstream_of([_table1_cpu(judge=None)])
    (alone,) = plan_experiments(["table1-cpu"], "cpu", reproduction=True)
    assert "text-judge" in alone.external
    cpu = [n for n in list_experiments() if "cpu" in load_experiment(n).reproduce]
    plan = plan_experiments(cpu, "cpu", reproduction=True)
    order = [p.name for p in plan]
    assert order.index("text-judge") < order.index("table1-cpu")
    assert "text-judge" in {p.name: p for p in plan}["table1-cpu"].upstream
    depth = {p.name: i for i, stage in enumerate(stages(plan)) for p in stage}
    assert depth["text-judge"] < depth["table1-cpu"]


def test_a_judge_run_must_resolve_to_a_trained_ar_run():
    config = _table1_cpu()
    with pytest.raises(ConfigError, match="task.judge run:no-such/x: unknown experiment"):
        check_judge(TextLMParams(judge="run:no-such/x"), config)
    with pytest.raises(ConfigError, match="has no variant"):
        check_judge(TextLMParams(judge="run:text-judge/nope"), config)
    with pytest.raises(ConfigError, match="expected a trained text-lm run of an autoreg"):
        check_judge(TextLMParams(judge="run:table1-cpu/mdlm"), config)


def test_a_missing_judge_run_names_the_run_and_the_command_before_any_sample(tmp_path):
    config = _table1_cpu()
    spec = judge_spec()
    task = TextLM(config.task.params, config)
    ctx = EvalContext(torch.device("cpu"), 1, tmp_path / "art", ema=False, runs_dir=tmp_path)
    ctx.artifact_dir.mkdir()
    command = "primebench run text-judge --variant ar-judge --scale cpu"
    with pytest.raises(JudgeUnavailableError, match=f"{spec.run_id} has no checkpoint") as err:
        task.evaluate(None, ctx)  # fails before the model is used
    assert command in str(err.value) and "run:text-judge/ar-judge" in str(err.value)
    assert not list(ctx.artifact_dir.iterdir())  # nothing sampled or written
    save_judge(tmp_path, random_judge_model(spec), spec, step=5)  # a run still training
    with pytest.raises(JudgeUnavailableError, match=f"is at step 5 of {spec.train.steps}"):
        check_judge(config.task.params, config, tmp_path, evaluation=True)
    with pytest.raises(JudgeUnavailableError, match="no runs directory"):
        check_judge(config.task.params, config, None, evaluation=True)
    check_judge(config.task.params, config)  # before training: the run need not exist


@pytest.fixture
def offline_cache(tmp_path, monkeypatch):
    pytest.importorskip("transformers")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    return tmp_path / "hub"


def test_gpt2_large_offline_without_its_files_fails_before_training(offline_cache):
    config = _table1_cpu(judge="gpt2-large", mauve_references=0)
    task = TextLM(config.task.params, config)
    with pytest.raises(JudgeUnavailableError) as err:
        task.train_rows()
    message = str(err.value)
    assert "task.judge gpt2-large (revision main)" in message
    assert "config.json, model.safetensors not in the Hugging Face cache" in message
    fill_cache(offline_cache, "gpt2-large", "c" * 40, {"config.json": b"{}"})
    with pytest.raises(JudgeUnavailableError, match=r"\): model.safetensors not in"):
        task.train_rows()
    fill_cache(offline_cache, "gpt2-large", "c" * 40, {"model.safetensors": b"w"})
    check_judge(config.task.params, config, evaluation=True)  # both cached: no error


def test_a_hub_judge_without_transformers_names_the_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)
    config = _table1_cpu(judge="gpt2-large", mauve_references=0)
    with pytest.raises(JudgeUnavailableError, match="'transformers' package"):
        check_judge(config.task.params, config)


def test_mauve_without_its_package_names_the_field(monkeypatch):
    monkeypatch.setattr("importlib.util.find_spec", lambda name, *a: None)
    config = _table1_cpu()
    with pytest.raises(JudgeUnavailableError, match="task.mauve_references: .*'mauve-text'"):
        check_judge(config.task.params, config)


def test_the_paper_rows_judge_with_gpt2_large_and_the_authors_counts():
    (mdlm,) = load_experiment("table1").resolve("paper", None, ["mdlm"])
    p = mdlm.task.params
    assert (p.judge, p.judge_batch, p.judge_group, p.sample_count) == ("gpt2-large", 2, 0, 5000)
    hybrid = load_experiment("table1-hybrid")
    (bd3lm,) = hybrid.resolve("paper", None, ["bd3lm-l4"])
    q = bd3lm.task.params
    assert (q.judge_batch, q.judge_group, q.sample_count, q.sample_batch) == (1, 25, 300, 1)
    (cpu,) = load_experiment("table1-cpu").resolve("cpu", None, ["mdlm"])
    assert cpu.task.params.judge == "run:text-judge/ar-judge"
