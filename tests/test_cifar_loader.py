"""The CIFAR-10 path, on a tiny fixture written in CIFAR-10's real on-disk format."""
import pickle

import numpy as np
import pytest
import torch
import torchvision

from posinfo.datasets import load_cifar10


def write_cifar10_fixture(root, n_per_batch=4):
    """cifar-10-batches-py/: five training batches, a test batch and batches.meta: pickled
    dicts with rows of 3072 uint8 (R, G, B planes of 32x32), as the real set. The real files
    are Python 2 pickles whose keys load as str with encoding='latin1', as written here."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for k, name in enumerate(names):
        batch = {"batch_label": name,
                 "labels": [(k + i) % 10 for i in range(n_per_batch)],
                 "data": rng.integers(0, 256, (n_per_batch, 3072), dtype=np.uint8),
                 "filenames": [f"{name}_{i}.png" for i in range(n_per_batch)]}
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f, protocol=2)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [f"class{i}" for i in range(10)],
                     "num_cases_per_batch": n_per_batch, "num_vis": 3072}, f, protocol=2)
    return folder


@pytest.fixture
def no_md5(monkeypatch):
    # The fixture cannot match the real files' MD5 sums; everything else is torchvision's own.
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity",
                        lambda path, md5=None: __import__("os").path.isfile(path))


def test_cifar10_loads_through_torchvision_from_the_real_layout(tmp_path, no_md5):
    folder = write_cifar10_fixture(tmp_path)
    train, test = load_cifar10(32, root=tmp_path)
    assert train.images.shape == (20, 3, 32, 32) and test.images.shape == (4, 3, 32, 32)
    raw = pickle.load(open(folder / "test_batch", "rb"))
    first = torch.tensor(raw["data"][0].reshape(3, 32, 32), dtype=torch.float32) / 255
    assert torch.allclose(test.images[0], first)
    assert test.labels.tolist() == raw["labels"]


def test_missing_cifar10_says_where_to_put_it(tmp_path):
    with pytest.raises(FileNotFoundError,
                       match=r"dataset='cifar10' needs CIFAR-10 in .*cifar-10-batches-py"):
        load_cifar10(32, root=tmp_path / "nowhere")


def write_cifar100_fixture(root, n_train=6, n_test=3):
    """cifar-100-python/: `train`, `test` and `meta`, with fine and coarse labels."""
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    for name, n in (("train", n_train), ("test", n_test)):
        with open(folder / name, "wb") as f:
            pickle.dump({"filenames": [f"{name}_{i}.png" for i in range(n)],
                         "fine_labels": [(7 * i + 3) % 100 for i in range(n)],
                         "coarse_labels": [i % 20 for i in range(n)],
                         "data": rng.integers(0, 256, (n, 3072), dtype=np.uint8)}, f, protocol=2)
    with open(folder / "meta", "wb") as f:
        pickle.dump({"fine_label_names": [f"fine{i}" for i in range(100)],
                     "coarse_label_names": [f"coarse{i}" for i in range(20)]}, f, protocol=2)


def test_cifar100_fine_labels_load_through_torchvision(tmp_path, no_md5):
    from posinfo.datasets import load_cifar

    write_cifar100_fixture(tmp_path)
    train, test = load_cifar("cifar100", 16, root=tmp_path)
    assert train.images.shape == (6, 3, 16, 16) and train.num_classes == 100
    assert test.labels.tolist() == [3, 10, 17]
    with pytest.raises(FileNotFoundError, match=r"dataset='cifar100' needs CIFAR-100 in"):
        load_cifar("cifar100", 32, root=tmp_path / "nowhere")
