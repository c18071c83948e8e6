import json
from dataclasses import asdict, replace

import pytest
import torch

from taylorlens import zoo
from taylorlens.zoo.datasets import MissingDataError
from taylorlens.zoo.loading import CorruptCacheWarning, StaleCacheWarning
from taylorlens.zoo.registry import model_info
from taylorlens.zoo.training import shuffled_labels, train_classifier
from taylorlens.zoo.training import test_accuracy as measured_accuracy

# Test accuracy on the 450 held-out digits with seed 0, as listed in docs/zoo.md.
DOCUMENTED_DIGITS_ACCURACY = {
    "digits_mlp_relu": 0.978,
    "digits_mlp_tanh": 0.969,
    "digits_mlp_sigmoid": 0.976,
    "digits_mlp_softplus": 0.976,
    "digits_cnn_relu": 0.982,
    "digits_cnn_tanh": 0.989,
    "digits_cnn_sigmoid": 0.971,
    "digits_cnn_softplus": 0.980,
    "digits_poly": 0.967,
    "digits_m_sg": 0.960,
    "digits_c_sg": 0.973,
    "digits_c_sp": 0.982,
}
MARGIN = 0.02


@pytest.mark.parametrize("name", sorted(DOCUMENTED_DIGITS_ACCURACY))
def test_digit_model_reaches_documented_accuracy(name):
    model = zoo.load(name)
    assert not model.training
    x, y = zoo.dataset("digits", "test")
    accuracy = measured_accuracy(model, x, y)
    assert accuracy >= DOCUMENTED_DIGITS_ACCURACY[name] - MARGIN
    assert zoo.accuracy(name) == pytest.approx(accuracy)


def test_cache_is_a_plain_state_dict_loadable_with_weights_only(zoo_cache):
    model = zoo.load("digits_c_sp")
    state = torch.load(zoo_cache / "digits_c_sp.pt", weights_only=True)
    assert set(state) == set(model.state_dict())
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    record = json.loads((zoo_cache / "digits_c_sp.json").read_text())
    assert record["seed"] == 0 and record["train_samples"] == 1347 and record["dataset"] == "digits"


def test_second_load_reads_the_cache_instead_of_retraining(zoo_cache):
    first = zoo.load("digits_poly")
    modified = (zoo_cache / "digits_poly.pt").stat().st_mtime_ns
    second = zoo.load("digits_poly")
    assert (zoo_cache / "digits_poly.pt").stat().st_mtime_ns == modified
    x, _ = zoo.dataset("digits")
    torch.testing.assert_close(first(x), second(x), rtol=0, atol=0)


def test_same_seed_gives_identical_weights_other_seed_does_not():
    info = model_info("digits_c_sp")
    data = zoo.dataset("digits", "train"), zoo.dataset("digits", "test")
    short = replace(info.recipe, epochs=2)
    runs = [train_classifier(info.build, *data, short, seed=seed).model for seed in (0, 0, 1)]
    states = [run.state_dict() for run in runs]
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
    assert not torch.equal(states[0]["logits.weight"], states[2]["logits.weight"])


def test_shuffled_labels_are_a_seeded_permutation_with_the_same_label_counts():
    _, y = zoo.dataset("digits", "train")
    shuffled = shuffled_labels(y, seed=0)
    assert torch.equal(shuffled, shuffled_labels(y, seed=0)) and not torch.equal(shuffled, shuffled_labels(y, seed=1))
    assert torch.equal(shuffled.bincount(), y.bincount()) and float((shuffled == y).float().mean()) < 0.2


def test_the_shuffled_label_cnn_memorises_its_labels_and_is_at_chance_on_the_test_digits():
    model = zoo.load("digits_cnn_relu_shuffled_labels")
    record = zoo.training_record("digits_cnn_relu_shuffled_labels")
    x, y = zoo.dataset("digits", "train")
    assert record["train_accuracy"] > 0.95 and record["recipe"]["shuffled_labels"]
    fitted = measured_accuracy(model, x, shuffled_labels(y, seed=record["seed"]))
    assert fitted == pytest.approx(record["train_accuracy"])
    assert zoo.accuracy("digits_cnn_relu_shuffled_labels") < 0.2  # 10 classes: chance is 0.1


def test_training_leaves_the_callers_random_state_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    info = model_info("digits_poly")
    train_classifier(info.build, zoo.dataset("digits", "train"), zoo.dataset("digits"), info.recipe)
    assert torch.equal(torch.rand(3), expected)


def test_corrupt_cache_file_warns_with_its_path_and_retrains(tmp_path):
    reference = zoo.load("digits_poly", cache_dir=tmp_path)
    weights = tmp_path / "digits_poly.pt"
    weights.write_bytes(b"not a torch file")
    with pytest.warns(CorruptCacheWarning, match="digits_poly.pt") as record:
        retrained = zoo.load("digits_poly", cache_dir=tmp_path)
    assert str(weights) in str(record[0].message)
    expected = reference.state_dict()
    assert all(torch.equal(expected[key], value) for key, value in retrained.state_dict().items())
    assert torch.load(weights, weights_only=True).keys() == reference.state_dict().keys()


def test_cache_from_another_architecture_is_treated_as_corrupt(tmp_path):
    torch.save({"weight": torch.zeros(3)}, tmp_path / "digits_poly.pt")
    with pytest.warns(CorruptCacheWarning, match="Missing key"):
        zoo.load("digits_poly", cache_dir=tmp_path)


def test_cache_trained_with_another_recipe_is_stale_and_retrained(tmp_path):
    reference = zoo.load("digits_poly", cache_dir=tmp_path)
    record_path = tmp_path / "digits_poly.json"
    record = json.loads(record_path.read_text())
    record["recipe"]["epochs"] += 1
    record_path.write_text(json.dumps(record))
    torch.save({key: torch.zeros_like(value) for key, value in reference.state_dict().items()},
               tmp_path / "digits_poly.pt")
    with pytest.warns(StaleCacheWarning, match=r"epochs: \d+ -> \d+"):
        retrained = zoo.load("digits_poly", cache_dir=tmp_path)
    expected = reference.state_dict()
    assert all(torch.equal(expected[key], value) for key, value in retrained.state_dict().items())
    current = json.loads(json.dumps(asdict(model_info("digits_poly").recipe)))
    assert json.loads(record_path.read_text())["recipe"] == current


def test_retrain_overwrites_the_cache(tmp_path):
    zoo.load("digits_poly", cache_dir=tmp_path)
    weights = tmp_path / "digits_poly.pt"
    before = weights.stat().st_mtime_ns
    zoo.load("digits_poly", cache_dir=tmp_path, retrain=True)
    assert weights.stat().st_mtime_ns != before


def test_models_without_offline_data_cannot_be_loaded_but_can_be_built():
    with pytest.raises(MissingDataError, match="not shipped by any Debian or PyPI package"):
        zoo.load("cifar10_cnn")
    with pytest.raises(MissingDataError):
        zoo.accuracy("cifar10_cnn")
    assert zoo.build("cifar10_cnn").training


def test_cache_directory_follows_argument_then_environment(tmp_path, monkeypatch, zoo_cache):
    assert zoo.cache_directory() == zoo_cache
    assert zoo.cache_directory(tmp_path) == tmp_path
    monkeypatch.delenv("TAYLORLENS_CACHE")
    assert str(zoo.cache_directory()).endswith(".cache/taylorlens")
