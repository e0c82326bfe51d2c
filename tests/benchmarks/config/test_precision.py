"""``fastest`` precision: chosen for the machine before the run id, recorded, and never a
reason for a float32 run to resume a bfloat16 one."""

from __future__ import annotations

import platform
from pathlib import Path

import pytest
import torch

from benchmarks.config.experiments import load_experiment
from benchmarks.config.precision import CPU_BF16_ENV, bf16_support
from benchmarks.config.run_config import RunConfig
from benchmarks.config.train_config import TrainConfig
from benchmarks.core import ConfigError
from benchmarks.training.hardware import select_hardware

EXPLICIT = {
    "bf16": {
        "train": {"precision": "bf16-mixed"},
        "task": {"sample_precision": "bfloat16", "fid_precision": "bfloat16"},
    },
    "fp32": {
        "train": {"precision": "32-true"},
        "task": {"sample_precision": "float32", "fid_precision": "float32"},
    },
}


def _image_cpu(overrides=None) -> dict[str, RunConfig]:
    configs = load_experiment("image-cpu").resolve("cpu", overrides)
    return {c.variant: c for c in configs}


@pytest.mark.parametrize("native, kind", [("1", "bf16"), ("0", "fp32")])
def test_fastest_is_the_machines_precision_and_the_run_id_says_which(monkeypatch, native, kind):
    monkeypatch.setenv(CPU_BF16_ENV, native)
    chosen = _image_cpu()
    explicit = _image_cpu(EXPLICIT[kind])
    for variant, config in chosen.items():
        precisions = (config.train.precision, config.task.params.sample_precision)
        assert precisions == (
            ("bf16-mixed", "bfloat16") if kind == "bf16" else ("32-true", "float32")
        )
        assert config.task.params.fid_precision == precisions[1]
        # The same run as the one that names its precision: the runs made before
        # "fastest" existed (bf16 written out) keep their ids and are not run again.
        assert config.run_id == explicit[variant].run_id


def test_a_float32_run_never_shares_the_id_of_a_bfloat16_run(monkeypatch):
    monkeypatch.setenv(CPU_BF16_ENV, "1")
    native = _image_cpu()
    monkeypatch.setenv(CPU_BF16_ENV, "0")
    emulated = _image_cpu()
    assert {c.run_id for c in native.values()}.isdisjoint(c.run_id for c in emulated.values())
    # Each of the three settings alone moves the id.
    for setting in ("train.precision", "task.sample_precision", "task.fid_precision"):
        section, name = setting.split(".")
        value = "bf16-mixed" if setting == "train.precision" else "bfloat16"
        (one,) = load_experiment("image-cpu").resolve("cpu", {section: {name: value}}, ["mdm"])
        assert one.run_id != emulated["mdm"].run_id, setting


def test_a_stored_config_keeps_the_choice_made_where_it_was_resolved(monkeypatch):
    monkeypatch.setenv(CPU_BF16_ENV, "1")
    config = _image_cpu()["prime-l2"]
    stored = config.to_dict()
    assert stored["train"]["precision"] == "bf16-mixed"  # the choice, not "fastest"
    monkeypatch.setenv(CPU_BF16_ENV, "0")  # read back (a job, a report) on another machine
    again = RunConfig.from_dict(stored)
    assert again.run_id == config.run_id and again.train.precision == "bf16-mixed"
    assert again.task.params.sample_precision == "bfloat16"


def test_auto_is_left_to_the_device_that_runs(monkeypatch):
    monkeypatch.setenv(CPU_BF16_ENV, "1")
    assert TrainConfig(precision="auto").precision == "auto"
    if not torch.cuda.is_available():
        assert select_hardware(TrainConfig(precision="auto")).precision == "32-true"


def test_a_bad_override_of_the_cpu_report_names_the_variable(monkeypatch):
    monkeypatch.setenv(CPU_BF16_ENV, "yes")
    if torch.cuda.is_available():
        pytest.skip("the CUDA device decides")
    with pytest.raises(ConfigError, match=rf"{CPU_BF16_ENV}: expected 0 or 1, got 'yes'"):
        TrainConfig(precision="fastest")


def test_every_run_records_whether_its_device_computes_bfloat16(monkeypatch):
    monkeypatch.setenv(CPU_BF16_ENV, "0")
    tags = select_hardware(TrainConfig()).tags()
    if torch.cuda.is_available():
        assert tags["runtime.bf16"].split(":")[0] in ("native", "emulated")
    else:
        assert tags["runtime.bf16"] == f"emulated: {CPU_BF16_ENV}=0"


def test_the_cpu_report_agrees_with_the_kernels_cpu_flags(monkeypatch):
    """Independent of torch's probe: Linux's /proc/cpuinfo lists avx512_bf16 / amx_bf16."""
    cpuinfo = Path("/proc/cpuinfo")
    if platform.machine() != "x86_64" or not cpuinfo.exists() or torch.cuda.is_available():
        pytest.skip("x86-64 Linux CPU only")
    monkeypatch.delenv(CPU_BF16_ENV)
    flags = set()
    for line in cpuinfo.read_text().splitlines():
        if line.startswith("flags"):
            flags = set(line.partition(":")[2].split())
            break
    native, why = bf16_support()
    assert native == bool({"avx512_bf16", "amx_bf16"} & flags), why
