"""Text models: DiT + sub-token encoder, MDLM = Prime(ell = 1), AR exactness, checkpoints."""

import math

import pytest
import torch
import torch.nn.functional as F

from benchmarks.config.experiments import load_experiment
from benchmarks.core import DataSpec, EvalContext
from benchmarks.registry import MODELS
from benchmarks.tasks.likelihood import block_nll
from benchmarks.tasks.text import TextLM
from benchmarks.training.checkpoints import load_trained_model
from benchmarks.training.runner import execute
from prime.backbones import DIT_PRESETS, DiT, SubTokenEmbedding

DATA = DataSpec(num_classes=256, seq_len=32)
DIT = {"name": "dit", "preset": "cpu"}


def _build(name: str, **params):
    from benchmarks.config.validation import build_dataclass

    entry = MODELS.get(name)
    torch.manual_seed(0)
    return entry.build(build_dataclass(entry.Params, {"backbone": DIT, **params}, "model"), DATA)


def test_subtoken_encoder_concatenates_a_shared_table():
    emb = SubTokenEmbedding(base=16, ell=4, dim=128)
    assert emb.weight.shape == (17, 32)
    y = torch.tensor([[[1, 2, 16, 3]]])
    out = emb(y)
    assert out.shape == (1, 1, 128)
    assert torch.equal(out[0, 0, 64:96], emb.weight[16])  # the mask row, in slot 3
    with pytest.raises(ValueError, match="ell=5 does not divide D=128"):
        SubTokenEmbedding(base=4, ell=5, dim=128)
    with pytest.raises(ValueError, match="must be divisible by heads"):
        DIT_PRESETS["cpu"].__class__(hidden=100, heads=3)


def test_prime_with_ell_one_trains_on_the_mdlm_loss():
    mdlm = _build("mdm")
    prime = _build("prime", ell=1)
    assert prime.codec.ell == 1
    x0 = torch.randint(0, 256, (4, 32), generator=torch.Generator().manual_seed(1))
    loss_m, _ = mdlm.training_loss(x0, torch.Generator().manual_seed(2))
    loss_p, _ = prime.training_loss(x0, torch.Generator().manual_seed(2))
    assert torch.equal(loss_m, loss_p)


def test_ar_nll_is_the_exact_next_token_nll():
    ar = _build("ar")
    with torch.no_grad():  # non-trivial weights: the head starts at zero
        for p in ar.parameters():
            p.add_(0.05 * torch.randn_like(p))
    x = torch.randint(0, 256, (2, 12), generator=torch.Generator().manual_seed(3))
    reported = ar.token_nll(x)
    # Independently: feed every prefix on its own and score the next token.
    for i in range(1, 12):
        logits = ar.network(x[:, :i].unsqueeze(-1), None)[:, -1]
        exact = -F.log_softmax(logits.double(), -1).gather(-1, x[:, i : i + 1]).squeeze(-1)
        assert torch.allclose(reported[:, i - 1].double(), exact, atol=1e-5)


def test_dit_attention_is_bidirectional_unless_causal():
    torch.manual_seed(0)
    net = DiT(DIT_PRESETS["cpu"], base=10, ell=1, out_dim=10)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    y = torch.randint(0, 10, (1, 6, 1))
    z = y.clone()
    z[0, -1, 0] = (y[0, -1, 0] + 1) % 10
    assert not torch.allclose(net(y)[0, 0], net(z)[0, 0])  # sees the future
    net.causal = True
    assert torch.allclose(net(y)[0, 0], net(z)[0, 0])


TINY = {
    "train": {
        "steps": 30,
        "global_batch_size": 8,
        "checkpoint_every": 15,
        "log_every": 5,
        "warmup_steps": 5,
    },
    "task": {
        "block_size": 64,
        "eval_blocks": 16,
        "eval_passes": 2,
        "eval_batch": 16,
        "sample_count": 2,
        "sample_steps": 16,
        "judge": None,  # no sample quality: no judge run to train first
    },
}


def test_loading_a_checkpoint_reproduces_the_evaluation_exactly(tmp_path):
    (config,) = load_experiment("table1-cpu").resolve("cpu", TINY, ["prime-l2"])
    result = execute(config, f"sqlite:///{tmp_path / 'm.db'}", tmp_path / "runs")
    model, ema = load_trained_model(config, tmp_path / "runs", torch.device("cpu"))
    assert ema
    task = TextLM(config.task.params, config)
    ctx = EvalContext(torch.device("cpu"), config.seed, tmp_path / "again", ema=True)
    ctx.artifact_dir.mkdir()
    scored = task.evaluate(model, ctx).metrics
    again = {m.name: m.value for m in scored if not m.name.startswith("perf/")}  # the machine's
    assert again == {k: v for k, v in result["metrics"].items() if k in again}
    assert set(again) >= {"val_nll_published", "val_nll_valid_bound", "sample_idle_ratio"}


@pytest.mark.slow
def test_trained_prime_valid_bound_is_not_below_the_published_estimator(tmp_path):
    overrides = {**TINY, "train": {**TINY["train"], "steps": 300}}
    (config,) = load_experiment("table1-cpu").resolve("cpu", overrides, ["prime-l4"])
    execute(config, f"sqlite:///{tmp_path / 'm.db'}", tmp_path / "runs")
    model, _ = load_trained_model(config, tmp_path / "runs", torch.device("cpu"))
    task = TextLM(config.task.params, config)
    val = task._blocks("validation")[:64]
    sums = block_nll(model, val, passes=4, batch=32, seed=0, device=torch.device("cpu"))
    gap = (sums["valid_bound"] - sums["published"]) / 64  # nats per token, per block
    se = float(gap.std()) / math.sqrt(len(gap))
    print(f"valid - published = {float(gap.mean()):.4f} ± {se:.4f} nats/token")
    assert float(gap.mean()) > 0


def test_zero_shot_evaluates_the_trained_checkpoint_on_local_sets(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from benchmarks.config.run_config import RunConfig
    from benchmarks.reports.render import render_report

    uri, runs = f"sqlite:///{tmp_path / 'm.db'}", tmp_path / "runs"
    overrides = [
        "train.steps=10",
        "train.checkpoint_every=10",
        "task.block_size=64",
        "task.eval_blocks=4",
        "task.sample_count=1",
        "task.sample_steps=4",
        "task.judge=null",
    ]
    from benchmarks.config.overrides import parse_overrides

    (trained,) = load_experiment("table1-cpu").resolve("cpu", parse_overrides(overrides), ["mdlm"])
    data = tmp_path / "sets"
    data.mkdir()
    pq.write_table(
        pa.table({"sentence": ["the cat sat on the mat . " * 20] * 4}), data / "ptb.parquet"
    )
    (data / "lambada.jsonl").write_text('{"text": "a story ends with a word"}\n' * 20)
    zero_shot = RunConfig.from_dict(
        {
            "experiment": "table2",
            "variant": "mdlm",
            "scale": "cpu",
            "model": None,
            "upstream": {"experiment": "table1-cpu", "overrides": overrides},
            "task": {
                "name": "text-zero-shot",
                "sets": ["ptb", "lambada"],
                "data_dir": str(data),
                "tokenizer": "bytes",
                "block_size": 64,
                "eval_passes": 1,
            },
        }
    )
    with pytest.raises(FileNotFoundError, match="train it first: primebench sweep table1-cpu"):
        execute(zero_shot, uri, runs)
    execute(trained, uri, runs)
    metrics = execute(zero_shot, uri, runs)["metrics"]
    for name in ("ptb", "lambada"):
        assert metrics[f"zs_{name}_nll_valid_bound"] > 0
        assert math.isclose(
            metrics[f"zs_{name}_ppl_valid_bound"], math.exp(metrics[f"zs_{name}_nll_valid_bound"])
        )
    written = render_report(uri, "cpu", results_dir=tmp_path / "results")
    table = (tmp_path / "results" / "cpu" / "table2_zero_shot.md").read_text()
    assert any(p.name == "table2_zero_shot.md" for _, p in written)
    assert "| mdlm | valid bound |" in table
