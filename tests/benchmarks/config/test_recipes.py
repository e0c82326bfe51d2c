"""Recipe cards: every paper-scale setting has a source, and agrees with it unless a
deviation is written (benchmarks.config.recipe)."""

from __future__ import annotations

import math

import pytest

from benchmarks.config.experiments import load_experiment
from benchmarks.config.recipe import (
    Entry,
    card,
    paper_experiments,
    problems,
    render_cards,
    settings,
)
from benchmarks.config.recipe_tables import authors_image_row, steps_per_epoch
from benchmarks.core import ConfigError


def _own_runs():
    for exp in paper_experiments():
        for variant in exp.variants:
            if variant not in exp.shared:
                for config in exp.resolve("paper", None, [variant]):
                    yield exp, config


def test_every_paper_setting_has_a_source_and_agrees_with_it():
    found = [line for exp, config in _own_runs() for line in problems(config, card(exp, config))]
    assert not found, "\n".join(found[:40])


def test_a_deviation_is_a_named_variant_never_a_reproduced_row():
    # What `reproduce --scale paper` runs is the authors' experiment; a setting of the
    # suite's own that differs from its source lives in a variant run only on request.
    found = []
    for exp, config in _own_runs():
        reproduced = exp.reproduced("paper")
        if reproduced is not None and config.variant not in reproduced:
            continue
        found += [
            f"{exp.name}/{config.variant}: {key}"
            for key, entry in card(exp, config).items()
            if entry.kind == "deviation"
        ]
    assert not found, "\n".join(found)


def test_the_image_cells_are_the_authors_readme_rows():
    # Independently of the card: the sampler of every image cell is its README row (the
    # FID curve takes its upstream row's sampler, checked where that row is).
    for _, config in _own_runs():
        if (
            config.task.name not in ("image", "image-checkpoint")
            or config.model is not None
            and (config.model.name == "mdm-mixture" and config.task.params.dataset == "imagenet32")
        ):
            continue
        row, p = authors_image_row(config), config.task.params
        assert p.temperature == tuple(float(x) for x in row["temperature"].split())
        assert p.corrector == tuple(float(x) for x in row["corrector"].split())
        assert p.time_warp == tuple(float(x) for x in row["time_warp"].split())
        assert p.proposal == ("subtoken" if row["carry_over"] == "true" else "token")
        assert not p.sampler_carry_over
        if config.model is not None:
            assert config.train.steps == int(row["epochs"]) * steps_per_epoch(p.dataset)


def test_the_authors_steps_per_epoch():
    # 8 ranks, 64 images each, the distributed sampler pads each share to ceil(N / 8) and
    # the loader drops the last partial batch.
    assert steps_per_epoch("cifar10") == 6250 // 64 == 97
    assert steps_per_epoch("imagenet32") == math.ceil(1_281_167 / 8) // 64 == 2502


def _config(variant="cifar10-l2"):
    exp = load_experiment("ell-sweep")
    return exp, exp.resolve("paper", None, [variant])[0]


def test_problems_names_a_missing_source_a_contradiction_and_a_false_deviation():
    exp, config = _config()
    entries = card(exp, config)
    assert not problems(config, entries)
    lacking = dict(entries)
    del lacking["train.lr"]
    assert problems(config, lacking) == ["ell-sweep/cifar10-l2: train.lr = 0.0001 has no source"]
    wrong = {**entries, "train.lr": Entry("source", "somewhere", value=3e-4)}
    (line,) = problems(config, wrong)
    assert "train.lr = 0.0001, but its source (somewhere) gives 0.0003" in line
    same = {**entries, "train.lr": Entry("deviation", "why", "somewhere", 1e-4)}
    assert problems(config, same) == [
        "ell-sweep/cifar10-l2: train.lr is written as a deviation but equals its source"
    ]
    stray = {**entries, "train.nothing": Entry("suite", "x", own=True)}
    assert "which is no setting" in problems(config, stray)[0]


@pytest.mark.parametrize(
    ("entry", "needle"),
    [
        ({"deviation": "why"}, "names its source and the value"),
        ({"source": "x", "suite": "y"}, "expected a source string"),
        ({"nothing": 1}, "expected a source string"),
        (["a"], "expected a source string"),
    ],
)
def test_a_malformed_entry_is_named(tmp_path, entry, needle):
    path = tmp_path / "mine.yaml"
    path.write_text(
        "defaults: {task: {name: toy2d}, model: {name: prime}}\n"
        f"recipe: {{defaults: {{train.lr: {entry!r}}}}}\n".replace("'", '"')
    )
    exp = load_experiment(path)
    with pytest.raises(ConfigError, match="mine.yaml: recipe.defaults.train.lr") as err:
        card(exp, exp.resolve("cpu")[0])
    assert needle in str(err.value)


def test_settings_cover_every_field_and_the_card_renders():
    _, config = _config("cifar10-l1")
    values = settings(config)
    assert values["model.backbone.preset"] == "paper" and values["train.steps"] == 242500
    assert "model.ell" not in values  # MDM has no ell setting
    text = render_cards()
    assert "### ell-sweep/cifar10-l2" in text and "**no source**" not in text
    assert "### table3/cifar10-mdm\n\nThe run of ell-sweep/cifar10-l1" in text
    assert "mdm-prime image/README.md, CIFAR-10 table: cifar10 MDM-Prime ell=2, NFE 512" in text


def test_the_paper_report_renders_the_cards_and_keeps_the_papers_readme(tmp_path):
    from benchmarks.reports.render import render_report

    (tmp_path / "paper").mkdir()
    (tmp_path / "paper" / "README.md").write_text("the paper's numbers\n")
    written = render_report(f"sqlite:///{tmp_path / 'mlflow.db'}", "paper", tmp_path)
    assert [path.name for _, path in written] == ["recipes.md"]
    assert (tmp_path / "paper" / "recipes.md").read_text() == render_cards("paper")
    assert "recipes.md" in (tmp_path / "paper" / "index.md").read_text()
    assert (tmp_path / "paper" / "README.md").read_text() == "the paper's numbers\n"


def test_a_bad_shared_card_is_named(tmp_path):
    path = tmp_path / "mine.yaml"
    head = "defaults: {task: {name: toy2d}, model: {name: prime}}\n"
    for recipe, needle in [
        ("{base: image-paper}", "recipe.base: expected a list of shared card names"),
        ("{base: [nowhere]}", "no shared card 'nowhere'; valid: image-paper, text-paper"),
    ]:
        path.write_text(head + f"recipe: {recipe}\n")
        exp = load_experiment(path)
        with pytest.raises(ConfigError, match="recipe") as err:
            card(exp, exp.resolve("cpu")[0])
        assert needle in str(err.value)
