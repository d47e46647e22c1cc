"""Split parsing, config resolution and the strict --set parser."""

from __future__ import annotations

import pytest

from sslbench.benchmark.config import ConfigError, build_config, config_from_dict, parse_sets
from sslbench.datasets.splits import Split, parse_split

TRAIN_IDS = [f"case{i:02d}" for i in range(80)]


@pytest.mark.parametrize(
    "text,labeled,unlabeled",
    [("8/72", 8, 72), ("16/64", 16, 64), ("80/0", 80, 0), ("8/0", 8, 0), (" 4 / 4 ", 4, 4)],
)
def test_parse_split(text, labeled, unlabeled):
    split = parse_split(text)
    assert (split.n_labeled, split.n_unlabeled) == (labeled, unlabeled)
    lab, unl = split.resolve(TRAIN_IDS)
    assert lab == TRAIN_IDS[:labeled]  # the literature's protocol: the first N of train.list
    assert unl == TRAIN_IDS[labeled : labeled + unlabeled]


@pytest.mark.parametrize("text", ["8", "8/", "a/b", "8.5/72", "-8/72", "8/-2", "0/80", "8/72/1", ""])
def test_bad_split_is_a_clear_error(text):
    with pytest.raises(ValueError, match="split"):
        parse_split(text)


def test_split_larger_than_train_list():
    with pytest.raises(ValueError, match="needs 81 training cases but train.list has 80"):
        Split(9, 72).resolve(TRAIN_IDS)


def test_presets_and_method_sections():
    cfg = build_config("mt", "8/72", 1337, "quick", parse_sets(["mt.w=0.2", "train.iterations=50"]))
    assert cfg.method_cfg.w == 0.2
    assert cfg.train.iterations == 50
    assert cfg.data.patch == (32, 32, 32) and cfg.train.n_filters == 4  # from the quick preset
    assert build_config("mt", "8/72", 1337, "paper").data.patch == (112, 112, 80)


@pytest.mark.parametrize(
    "sets,message",
    [
        (["train.iterationz=3"], "unknown key 'train.iterationz'"),
        (["train.iterations=abc"], "train.iterations: expected int"),
        (["data.patch=32,32"], "expected 3 comma-separated"),
        (["data.patch=30,30,30"], "multiple of 16"),
        (["mt.nonsense=1"], "unknown key 'method.nonsense'"),
        (["foo.bar=1"], "unknown key 'foo.bar'"),
        (["train.amp=maybe"], "expected true or false"),
        (["train.batch_size=1"], "BatchNorm"),
    ],
)
def test_bad_overrides(sets, message):
    with pytest.raises(ConfigError, match=message):
        build_config("mt", "8/72", 1337, "quick", parse_sets(sets))


def test_set_without_equals():
    with pytest.raises(ConfigError, match="expected section.key=value"):
        parse_sets(["train.iterations"])


def test_supervised_split_rules():
    with pytest.raises(ConfigError, match="supervised"):
        build_config("sup", "8/72")
    with pytest.raises(ConfigError, match="no unlabeled cases"):
        build_config("mt", "8/0")


def test_run_id_roundtrip_and_sensitivity():
    cfg = build_config("uamt", "8/72", 1337, "quick", {"uamt.K": "4"})
    again = config_from_dict(cfg.to_dict())
    assert again == cfg and again.run_id() == cfg.run_id()
    assert build_config("uamt", "8/72", 1338, "quick").run_id() != cfg.run_id()
    # The device does not change results, so it does not change the run id.
    assert (
        build_config("uamt", "8/72", 1337, "quick", {"uamt.K": "4", "train.device": "cpu"}).run_id()
        == cfg.run_id()
    )


def test_the_data_folder_enters_the_run_id_resolved(tiny_data, monkeypatch):
    """`./LA`, `LA/` and the absolute path are one folder, so one run id (bench train and bench run alike)."""
    monkeypatch.chdir(tiny_data.parent)
    typed = [str(tiny_data), f"{tiny_data}/", f"./{tiny_data.name}", f"{tiny_data.name}/../{tiny_data.name}"]
    ids = {build_config("sup", "4/0", 1, "smoke", {}, root).run_id() for root in typed}
    assert len(ids) == 1
    via_set = build_config("sup", "4/0", 1, "smoke", {"data.root": f"./{tiny_data.name}"})
    assert via_set.data.root == str(tiny_data.resolve()) and via_set.run_id() in ids
    assert build_config("sup", "4/0", 1, "smoke", {}, None).data.root is None  # the built-in dataset


def test_run_ids_of_existing_results_do_not_change():
    """Run ids name the folders of every finished run (and results/): a refactor must not move them.

    The ids below are those of the committed quick-preset results (results/report/tables/runs.csv).
    """
    assert build_config("sup", "8/0", 1337, "quick").run_id() == "a782550887"
    assert build_config("mt", "8/72", 1337, "quick").run_id() == "a3004aca66"
    assert build_config("lrep", "8/72", 1337, "quick").run_id() == "e82452d283"


def test_published_recipe_applies_the_authors_settings_and_is_recorded():
    ours = build_config("bcp", "8/72", 1337, "paper")
    theirs = build_config("bcp", "8/72", 1337, "paper", recipe="published")
    assert (ours.train.iterations, ours.train.batch_size) == (6000, 4)
    assert (
        theirs.train.iterations,
        theirs.train.lr_step,
        theirs.train.batch_size,
        theirs.train.labeled_bs,
    ) == (
        15000,
        2500,
        8,
        4,
    )
    assert theirs.to_dict()["recipe"] == "published" and "recipe" not in ours.to_dict()
    assert theirs.run_id() != ours.run_id()
    assert config_from_dict(theirs.to_dict()).run_id() == theirs.run_id()  # config.json rebuilds it
    # --set still wins over the recipe
    mine = build_config("bcp", "8/72", 1337, "paper", {"train.iterations": "100"}, recipe="published")
    assert mine.train.iterations == 100 and mine.train.batch_size == 8
    # a method whose authors' protocol is the benchmark's: the same numbers, but recorded (and its own id)
    mt = build_config("mt", "8/72", 1337, "paper", recipe="published")
    assert mt.train == build_config("mt", "8/72", 1337, "paper").train and mt.recipe == "published"
    with pytest.raises(ConfigError, match="--recipe authors"):
        build_config("mt", "8/72", 1337, "paper", recipe="authors")


def test_paper_preset_trains_in_fp32():
    assert build_config("uamt", "8/72", 1337, "paper").train.amp is False
    assert build_config("uamt", "8/72", 1337, "paper", {"train.amp": "true"}).train.amp is True


def test_an_added_field_at_its_legacy_value_keeps_the_run_id():
    """train.optimizer came after results existed: at "sgd" (what every earlier run used) it leaves ids alone."""
    sgd = build_config("mt", "8/72", 1337, "quick")
    assert sgd.train.optimizer == "sgd" and sgd.run_id() == "a3004aca66"
    adamw = build_config("mt", "8/72", 1337, "quick", {"train.optimizer": "adamw"})
    assert adamw.run_id() != sgd.run_id()
    with pytest.raises(ConfigError, match="train.optimizer"):
        build_config("mt", "8/72", 1337, "quick", {"train.optimizer": "adam"})


def test_the_optimizer_setting_builds_that_optimizer():
    import torch

    from sslbench.benchmark.training.step import build_optimizer

    params = [torch.nn.Parameter(torch.zeros(2))]
    adamw = build_optimizer(
        build_config("mt", "8/72", 1, "quick", {"train.optimizer": "adamw"}).train, params
    )
    sgd = build_optimizer(build_config("mt", "8/72", 1, "quick").train, params)
    assert isinstance(adamw, torch.optim.AdamW) and adamw.defaults["betas"] == (0.9, 0.999)
    assert isinstance(sgd, torch.optim.SGD) and sgd.defaults["momentum"] == 0.9
