"""A DeepLabv3-style segmenter on the project's backbone, its training, and mIoU.

The network is the reference code's design at CPU scale: the project's ResNet backbone
(padding mode carried through), then torchvision's DeepLabv3 head (ASPP with an image-pooling
branch, then a 3x3 conv and a 1x1 classifier), upsampled bilinearly to the input size.
``features`` is the backbone output the paper's attack edits; ``decode`` is everything after.

The ``paper`` profile swaps in torchvision's ``deeplabv3_resnet50`` (output stride 16) with a
checkpoint the user supplies, and Cityscapes from data/; both expose the same two methods.

Used by chapters 4 and 5.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .models import build_backbone
from .checks import PAPER_SEGMENTER_CHANNELS
from .datasets import data_dir
from .scenes import (CITYSCAPES_CLASSES, CLASSES, IGNORE, SceneTask, cityscapes_missing,
                     load_cityscapes, make_scene_task)
from .train import (cached_fit, pick_device, plannable, prepare_model, seed_everything,
                    to_device, train_budgets)


class Segmenter(nn.Module):
    """backbone -> DeepLabv3 head -> bilinear upsampling to the input's size."""

    def __init__(self, backbone: nn.Module, head: nn.Module, channels: int):
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.channels = channels  # width of the backbone output: what rankings must match

    def features(self, x):
        return self.backbone(x)

    def decode(self, features, size):
        return F.interpolate(self.head(features), size=size, mode="bilinear", align_corners=False)

    def forward(self, x):
        return self.decode(self.features(x), x.shape[-2:])


def deeplab_head(in_channels: int, num_classes: int, atrous_rates=(12, 24, 36),
                 head_channels: int = 256) -> nn.Sequential:
    """torchvision's DeepLabHead with a choosable width (256 there; a CPU can afford less).

    ASPP: a 1x1 branch, one dilated 3x3 branch per rate and an image-pooling branch (GAP of
    the backbone output, broadcast back), concatenated and projected; then 3x3 conv, 1x1.
    """
    from torchvision.models.segmentation.deeplabv3 import ASPP

    return nn.Sequential(ASPP(in_channels, tuple(atrous_rates), head_channels),
                         nn.Conv2d(head_channels, head_channels, 3, padding=1, bias=False),
                         nn.BatchNorm2d(head_channels), nn.ReLU(),
                         nn.Conv2d(head_channels, num_classes, 1))


def build_segmenter(num_classes: int, width: int = 64, blocks=(2, 2, 2, 2), padding: str = "zeros",
                    atrous_rates=(12, 24, 36), head_channels: int = 256,
                    in_channels: int = 3) -> Segmenter:
    """The project's backbone with a DeepLabv3 head (ASPP rates in feature-map pixels)."""
    backbone = build_backbone(in_channels, width, blocks, padding)
    head = deeplab_head(backbone.out_channels, num_classes, atrous_rates, head_channels)
    return Segmenter(backbone, head, backbone.out_channels)


class _TorchvisionSegmenter(nn.Module):
    """torchvision's DeepLabV3 behind the Segmenter interface (its backbone returns a dict)."""

    def __init__(self, model):
        super().__init__()
        self.backbone = model.backbone
        self.head = model.classifier
        self.channels = PAPER_SEGMENTER_CHANNELS
        # Cityscapes checkpoints are trained on ImageNet-normalised inputs; ours take [0, 1].
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406])[:, None, None])
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225])[:, None, None])

    def features(self, x):
        return self.backbone((x - self.mean) / self.std)["out"]

    def decode(self, features, size):
        return F.interpolate(self.head(features), size=size, mode="bilinear", align_corners=False)

    def forward(self, x):
        return self.decode(self.features(x), x.shape[-2:])


def load_paper_segmenter(checkpoint: str | Path, num_classes: int = 19) -> _TorchvisionSegmenter:
    """torchvision's deeplabv3_resnet50 architecture at output stride 16, weights from a file.

    Output stride 16 (the reference code's) dilates only the last ResNet stage, so the ASPP
    rates are (6, 12, 18). The file may hold a bare state dict or one under 'model_state',
    'state_dict' or 'model', with or without DataParallel's 'module.' prefix.
    """
    from torchvision.models import resnet50
    from torchvision.models._utils import IntermediateLayerGetter
    from torchvision.models.segmentation.deeplabv3 import DeepLabHead, DeepLabV3

    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        raise FileNotFoundError(_missing_checkpoint(checkpoint))
    backbone = IntermediateLayerGetter(resnet50(replace_stride_with_dilation=[False, False, True]),
                                       return_layers={"layer4": "out"})
    head = DeepLabHead(PAPER_SEGMENTER_CHANNELS, num_classes, (6, 12, 18))
    model = DeepLabV3(backbone, head, None)
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    for k in ("model_state", "state_dict", "model"):
        if isinstance(state, dict) and k in state and isinstance(state[k], dict):
            state = state[k]
    state = {k.removeprefix("module."): v for k, v in state.items()
             if not k.removeprefix("module.").startswith("aux_classifier")}
    model.load_state_dict(state)
    return _TorchvisionSegmenter(model).eval()


def _missing_checkpoint(path) -> str:
    return (f"checkpoint {str(path)!r} (a DeepLabv3-ResNet50 Cityscapes state dict, torchvision "
            f"layout, output stride 16; put it there or pass -p checkpoint PATH)")


def segmentation_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-pixel cross-entropy; IGNORE pixels (the ego vehicle) add nothing."""
    return F.cross_entropy(model(x), y, ignore_index=IGNORE)


# ---- mIoU --------------------------------------------------------------------------------------
def confusion_matrix(pred: torch.Tensor, target: torch.Tensor, num_classes: int,
                     ignore: int = IGNORE) -> torch.Tensor:
    """(K, K) counts, rows = true class, columns = predicted; ``ignore`` pixels are dropped."""
    keep = target != ignore
    t, p = target[keep].long(), pred[keep].long()
    return torch.bincount(t * num_classes + p, minlength=num_classes ** 2).reshape(num_classes,
                                                                                  num_classes)


def mean_iou(confusion: torch.Tensor) -> float:
    """Mean over classes present (in truth or prediction) of TP / (TP + FP + FN)."""
    iou = class_iou(confusion)
    present = ~iou.isnan()
    return float(iou[present].mean()) if present.any() else float("nan")


def class_iou(confusion: torch.Tensor) -> torch.Tensor:
    """(K,) IoU of each class, TP / (TP + FP + FN); NaN for a class absent from both truth
    and prediction (``mean_iou`` is the mean of the present ones)."""
    c = confusion.double()
    tp = c.diag()
    union = c.sum(0) + c.sum(1) - tp
    return torch.where(union > 0, tp / union.clamp(min=1), torch.full_like(tp, float("nan")))


# ---- training ----------------------------------------------------------------------------------
SEGMENTER_KEYS = ("scene_height", "scene_width", "scene_mode", "n_train", "n_val", "padding",
                  "width", "blocks", "atrous_rates", "head_channels", "epochs", "batch_size",
                  "lr", "betas", "seed")


def segmenter_config(settings, **changes) -> dict:
    """Everything that changes the segmenter's weights (the cache key)."""
    config = {k: settings[k] for k in SEGMENTER_KEYS}
    config.update(changes)
    return config


@dataclass
class TrainedSegmenter:
    model: Segmenter
    task: SceneTask
    history: list
    from_cache: bool


@plannable
def train_segmenter(config: dict, device=None, use_cache: bool = True,
                    snapshots=()) -> TrainedSegmenter:
    """Train (or load from the cache) the segmenter a config describes, on its scenes;
    ``snapshots``: shorter budgets to cache on the way (see ``train.cached_fit``)."""
    device = pick_device(device)
    task = make_scene_task(config["n_train"], config["n_val"], config["scene_height"],
                           config["scene_width"], config["scene_mode"], config["seed"])
    seed_everything(config["seed"])  # the weight init
    model = build_segmenter(task.num_classes, config["width"], config["blocks"], config["padding"],
                            config["atrous_rates"], config["head_channels"])
    desc = f"segmenter {config['scene_mode']} w{config['width']}"
    history, from_cache = cached_fit(config, model, task, loss_fn=segmentation_loss, device=device,
                                     desc=desc, use_cache=use_cache, snapshots=snapshots)
    return TrainedSegmenter(model.eval(), task, history, from_cache)


@torch.no_grad()
def backbone_features(model: nn.Module, images: torch.Tensor, batch_size: int = 64,
                      device=None) -> torch.Tensor:
    """The backbone output for a stack of images, computed once so that many attacks on the
    head can reuse it (only the head runs again per attack)."""
    device = pick_device(device)
    prepare_model(model, device).eval()
    return torch.cat([model.features(to_device(images[i:i + batch_size], device)).cpu()
                      for i in range(0, len(images), batch_size)])


def as_numpy_image(image: torch.Tensor) -> np.ndarray:
    return image.permute(1, 2, 0).clamp(0, 1).cpu().numpy()


@dataclass
class SegmentationSetup:
    """What the attack chapters need: a model and the validation images it is scored on."""
    model: nn.Module
    images: torch.Tensor
    labels: torch.Tensor
    class_names: tuple
    trained: TrainedSegmenter | None  # None when the weights came from a checkpoint

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def _repo_path(path: str) -> Path:
    path = Path(path)
    return path if path.is_absolute() else Path(__file__).resolve().parents[2] / path


def _scene_setup(run: TrainedSegmenter) -> SegmentationSetup:
    """A trained scene segmenter with the validation scenes it is scored on."""
    return SegmentationSetup(run.model, run.task.val.images, run.task.val.labels, CLASSES, run)


def segmentation_setup(settings, device=None) -> SegmentationSetup:
    """Scenes: train (or load from the cache) the small segmenter at the settings' seed
    (which also draws the scenes). Cityscapes: load the user's DeepLabv3-ResNet50
    checkpoint and the validation split; whatever of the two is missing is named in one
    error, before anything is loaded."""
    if settings.data == "scenes":
        return _scene_setup(train_segmenter(segmenter_config(settings), device))
    root, checkpoint = data_dir() / "cityscapes", _repo_path(settings.checkpoint)
    missing = cityscapes_missing(root) + ([] if checkpoint.is_file() else
                                          [_missing_checkpoint(checkpoint)])
    if missing:
        raise FileNotFoundError("data='cityscapes' (the paper profile) is missing: "
                                + "; ".join(missing)
                                + ". See data/README.md; nothing is downloaded.")
    model = load_paper_segmenter(checkpoint, len(CITYSCAPES_CLASSES))
    val = load_cityscapes(root, "val", settings.scene_height, settings.scene_width, settings.n_val)
    return SegmentationSetup(model, val.images, val.labels, CITYSCAPES_CLASSES, None)


def segmentation_budgets(settings, seed: int, budgets, device=None) -> dict:
    """{epochs: SegmentationSetup} of one seed's segmenter at each training budget, for the
    price of the longest (shorter budgets are its cached snapshots). A checkpoint
    (data='cityscapes') has no training history: its one model stands at every budget."""
    if settings.data != "scenes":
        return {max(budgets): segmentation_setup(settings, device)}
    runs = train_budgets(lambda config, snapshots: train_segmenter(config, device,
                                                                   snapshots=snapshots),
                         segmenter_config(settings, seed=seed), budgets)
    return {k: _scene_setup(run) for k, run in runs.items()}
