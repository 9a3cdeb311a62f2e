"""The images the canvases are made of: ``ImageSet`` (images, labels and the space they are
in), the bundled handwritten digits, CIFAR-10/100 read from data/ (never downloaded), and the
train and test split a chapter's settings name.

The reference code normalises each image per channel before pasting it, so a blank canvas
is the dataset's mean colour in the network's input; ``ImageSet.normalized`` does the same,
with CIFAR-10's statistics from the reference code and every other dataset's from its own
training split (``channel_stats``).

Used by chapters 1-3 (through ``canvas.make_task`` and ``shifts``) and the segmenter's data.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .checks import DATASETS


@dataclass
class ImageSet:
    """Images (N, C, H, W) with integer class labels: in [0, 1], or, once ``normalized``,
    in the normalised space (x - mean) / std per channel, with ``mean`` and ``std`` kept."""
    images: torch.Tensor
    labels: torch.Tensor
    num_classes: int
    mean: tuple | None = None  # per channel; None: the images are raw [0, 1] values
    std: tuple | None = None

    def __len__(self):
        return len(self.labels)

    def _replace(self, images, labels):
        return ImageSet(images, labels, self.num_classes, self.mean, self.std)

    def to(self, device):
        return self._replace(self.images.to(device), self.labels.to(device))

    def _stats(self, x):
        shape = (len(self.mean), 1, 1)
        return (torch.tensor(self.mean, device=x.device).reshape(shape),
                torch.tensor(self.std, device=x.device).reshape(shape))

    def normalized(self, mean, std) -> "ImageSet":
        """The same images as (x - mean) / std per channel, as the reference code feeds its
        network: a blank (zero) canvas is then the dataset's mean colour, not black."""
        out = ImageSet(self.images, self.labels, self.num_classes, tuple(map(float, mean)),
                       tuple(map(float, std)))
        return out._replace(out.normalize(self.images), self.labels)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """Raw [0, 1] pixels (a noise or texture background) into this set's space."""
        if self.mean is None:
            return x
        mean, std = self._stats(x)
        return (x - mean) / std

    def raw(self, x: torch.Tensor) -> torch.Tensor:
        """Canvases of this set's space back to [0, 1] pixels, for figures."""
        if self.mean is None:
            return x
        mean, std = self._stats(x)
        return x * std + mean


# Per-channel mean and std of the reference code's CIFAR-10 pipeline (its trainval scripts'
# transforms.Normalize); other datasets use their own training split's statistics.
REFERENCE_STATS = {"cifar10": ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010))}


def channel_stats(dataset: str, train: ImageSet) -> tuple[tuple, tuple]:
    """(mean, std) per channel that ``normalized`` uses for ``dataset``."""
    if dataset in REFERENCE_STATS:
        return REFERENCE_STATS[dataset]
    x = train.images.transpose(0, 1).reshape(train.images.shape[1], -1).double()
    return tuple(x.mean(1).tolist()), tuple(x.std(1).tolist())


def load_digits(image_size: int = 16) -> tuple[ImageSet, ImageSet]:
    """scikit-learn's 1,797 bundled 8x8 handwritten digits, upsampled, split 80/20.

    The split is fixed (stratified, seed 0) so that every run and every chapter tests on
    the same held-out digits; the run's own seed only drives training.
    """
    from sklearn.datasets import load_digits as sk_digits
    from sklearn.model_selection import train_test_split

    digits = sk_digits()
    x = torch.tensor(digits.images, dtype=torch.float32)[:, None] / 16.0
    if image_size != 8:
        x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", align_corners=False)
        x = x.clamp_(0, 1)
    y = torch.tensor(digits.target, dtype=torch.long)
    train_idx, test_idx = train_test_split(np.arange(len(y)), test_size=0.2, random_state=0,
                                           stratify=digits.target)
    return (ImageSet(x[train_idx], y[train_idx], 10), ImageSet(x[test_idx], y[test_idx], 10))


def data_dir() -> Path:
    """Where real datasets live: $POSINFO_DATA, else the repository's data/ folder."""
    import os
    env = os.environ.get("POSINFO_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "data"


# torchvision class, folder it expects under root, archive the user downloads, classes
_CIFAR = {"cifar10": ("CIFAR10", "cifar-10-batches-py", "cifar-10-python.tar.gz", 10),
          "cifar100": ("CIFAR100", "cifar-100-python", "cifar-100-python.tar.gz", 100)}
NUM_CLASSES = {"digits": 10, **{name: spec[3] for name, spec in _CIFAR.items()}}


def load_cifar(name: str = "cifar10", image_size: int = 32,
               root: str | Path | None = None) -> tuple[ImageSet, ImageSet]:
    """CIFAR-10 or CIFAR-100 (fine labels) through torchvision, never downloading: the
    user puts the python version under data/<name>/."""
    import torchvision

    cls, folder, archive, classes = _CIFAR[name]
    root = Path(root) if root is not None else data_dir() / name
    if not (root / folder).is_dir():
        raise FileNotFoundError(
            f"dataset={name!r} needs {cls[:5]}-{cls[5:]} in {root / folder}; download the python "
            f"version ({archive}) and unpack it there, or set POSINFO_DATA (see data/README.md). "
            "Nothing is downloaded at run time.")

    def to_set(train):
        ds = getattr(torchvision.datasets, cls)(root=str(root), train=train, download=False)
        x = torch.from_numpy(ds.data).permute(0, 3, 1, 2).float() / 255.0
        if image_size != 32:
            x = F.interpolate(x, size=(image_size, image_size), mode="bilinear",
                              align_corners=False).clamp_(0, 1)
        return ImageSet(x, torch.tensor(ds.targets, dtype=torch.long), classes)

    return to_set(True), to_set(False)


def load_cifar10(image_size: int = 32, root: str | Path | None = None):
    return load_cifar("cifar10", image_size, root)


def load_images(dataset: str, image_size: int) -> tuple[ImageSet, ImageSet]:
    """Train and test images of a named dataset (see checks.DATASETS)."""
    if dataset == "digits":
        return load_digits(image_size)
    if dataset in _CIFAR:
        return load_cifar(dataset, image_size)
    raise ValueError(f"dataset must be one of {DATASETS}, got {dataset!r}")


def subset(images: ImageSet, n: int) -> ImageSet:
    """The first n images (the split is already shuffled and stratified)."""
    n = min(n, len(images))
    return images._replace(images.images[:n], images.labels[:n])


def load_split(settings, device=None) -> tuple[ImageSet, ImageSet]:
    """The train and test images chapter settings name (dataset, image_size, n_train,
    n_test), on ``device``; with ``normalize``, both in the normalised space of the
    training split's statistics (``channel_stats``)."""
    train, test = load_images(settings.dataset, settings.image_size)
    if settings.get("normalize"):
        mean, std = channel_stats(settings.dataset, train)
        train, test = train.normalized(mean, std), test.normalized(mean, std)
    train, test = subset(train, settings.n_train), subset(test, settings.n_test)
    if device is not None:
        train, test = train.to(device), test.to(device)
    return train, test
