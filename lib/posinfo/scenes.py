"""Procedural street scenes with per-pixel labels: an offline stand-in for Cityscapes.

What makes the paper's segmentation effects possible on Cityscapes is copied on purpose:

* **Classes that share a look and differ mainly in where they are.** Road and sidewalk are
  the same gravel (only a thin curb separates them), building and wall the same brick (the
  building stands on the right and reaches up, the wall is low on the left), sky and a
  puddle on the road the same cloud texture. To label these a network must know where a
  pixel is, not only what it looks like.
* **Left-right asymmetry**, as in right-hand traffic: sidewalk, buildings and parked cars on
  the right, a grass verge, a low wall and trees on the left. On a data set that is
  symmetric under horizontal flips, E[z(x) - z(flip x)] = 0 for every channel, so a signed
  (left/right) ranking of channels could only find noise.

Two controls come from the same generator: ``mode="symmetric"`` mirrors each scene with
probability 1/2 (same look-alikes, no asymmetry), ``mode="distinct"`` keeps the asymmetry
but gives every class its own texture (position no longer needed to tell classes apart).

Textures are the photos bundled with scikit-image (brick, grass, gravel, moon, camera, and
coffee, chelsea, astronaut, rocket for the parked objects), so nothing is downloaded.
Everything is batched tensor code driven by one ``torch.Generator``: a seed gives the same
scenes on every machine.

Used by chapters 4 and 5.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .checks import check_scene_mode

CLASSES = ("road", "sidewalk", "building", "wall", "vegetation", "sky", "puddle", "car")
IGNORE = 255  # the ego vehicle's bonnet, as in Cityscapes: in the image, never scored
# One colour per class for label maps (Cityscapes' palette where the class exists there).
PALETTE = np.array([(128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156),
                    (107, 142, 35), (70, 130, 180), (0, 220, 220), (0, 0, 142)]) / 255.0

_TEX_SIZE = 160  # textures are resampled so that a brick or a pebble spans a few pixels
_TINTS = {"gravel": (0.95, 0.92, 0.88), "brick": (1.0, 0.75, 0.6), "grass": (0.6, 1.0, 0.45),
          "moon": (0.8, 0.8, 1.0), "camera": (1.0, 1.0, 0.7), "clouds": (0.75, 0.85, 1.0),
          "water": (0.5, 0.9, 0.9), "bonnet": (0.3, 0.3, 0.35)}
# Which texture paints which class (cars are painted with photos, see _paint_cars).
_LOOKALIKE = {"road": "gravel", "sidewalk": "gravel", "building": "brick", "wall": "brick",
              "vegetation": "grass", "sky": "clouds", "puddle": "clouds"}
_DISTINCT = dict(_LOOKALIKE, sidewalk="moon", wall="camera", puddle="water")
_PHOTOS = ("coffee", "chelsea", "astronaut", "rocket")


@functools.lru_cache(maxsize=None)
def _textures() -> dict:
    """{name: (3, S, S) float tensor in [0, 1]}: tinted grey textures and resized photos."""
    from skimage import data

    def grey(img, tint):
        t = torch.tensor(img, dtype=torch.float32)[None, None] / 255.0
        t = F.interpolate(t, size=(_TEX_SIZE, _TEX_SIZE), mode="area")[0]
        return (t * torch.tensor(tint)[:, None, None]).clamp(0, 1)

    tex = {name: grey(getattr(data, name)(), _TINTS[name])
           for name in ("gravel", "brick", "grass", "moon", "camera")}
    # Clouds: smooth noise, made once from a fixed seed (it is part of the data, not the run).
    generator = torch.Generator().manual_seed(2021)
    noise = torch.rand(1, 1, _TEX_SIZE // 8, _TEX_SIZE // 8, generator=generator)
    smooth = F.interpolate(noise, size=(_TEX_SIZE, _TEX_SIZE), mode="bicubic",
                           align_corners=False)[0]
    clouds = 0.7 + 0.3 * smooth + 0.05 * torch.rand(1, _TEX_SIZE, _TEX_SIZE, generator=generator)
    tex["clouds"] = (clouds * torch.tensor(_TINTS["clouds"])[:, None, None]).clamp(0, 1)
    tex["water"] = (clouds.flip(-1) * torch.tensor(_TINTS["water"])[:, None, None]).clamp(0, 1)
    tex["bonnet"] = (0.5 * tex["gravel"].mean(0, keepdim=True)
                     * torch.tensor(_TINTS["bonnet"])[:, None, None])
    for name in _PHOTOS:
        photo = torch.tensor(getattr(data, name)(),
                             dtype=torch.float32).permute(2, 0, 1)[None] / 255
        tex[name] = F.interpolate(photo, size=(64, 96), mode="area")[0]
    return tex


def _crops(texture: torch.Tensor, n: int, h: int, w: int,
           generator: torch.Generator) -> torch.Tensor:
    """n random (wrapping) crops of a (3, S, S) texture: (n, 3, h, w)."""
    s = texture.shape[-1]
    top = torch.randint(0, s, (n, 1, 1), generator=generator)
    left = torch.randint(0, s, (n, 1, 1), generator=generator)
    rows = (top + torch.arange(h)[None, :, None]) % s
    cols = (left + torch.arange(w)[None, None, :]) % s
    return texture.reshape(3, -1)[:, rows * s + cols].permute(1, 0, 2, 3)


def _uniform(n, low, high, generator):
    """One number per scene, uniform in [low, high), shaped (n, 1, 1) to broadcast over the
    scene's pixels."""
    return low + (high - low) * torch.rand(n, 1, 1, generator=generator)


@dataclass
class Scenes:
    """Images (N, 3, H, W) in [0, 1] and labels (N, H, W) (class index or IGNORE)."""
    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self):
        return len(self.labels)


def make_scenes(n: int, height: int, width: int, mode: str = "asymmetric",
                generator: torch.Generator | None = None) -> Scenes:
    """n street scenes of height x width pixels (see the module's docstring for the design)."""
    check_scene_mode(mode)
    if height < 16 or width < 16:
        raise ValueError(f"scene_height and scene_width must be >= 16, got {height}x{width}")
    if generator is None:
        generator = torch.Generator().manual_seed(0)
    v = torch.linspace(0, 1, height)[None, :, None].expand(1, height, width)  # 0 at the top
    u = torch.linspace(0, 1, width)[None, None, :].expand(1, height, width)  # 0 at the left
    horizon = _uniform(n, 0.38, 0.5, generator)
    vanish = _uniform(n, 0.42, 0.58, generator)
    # Road edges run from the vanishing point to their bottom positions (perspective).
    left_bottom, right_bottom = (_uniform(n, -0.35, 0.1, generator),
                                 _uniform(n, 0.62, 0.8, generator))
    depth = ((v - horizon) / (1 - horizon)).clamp(min=0)  # 0 at the horizon, 1 at the bottom
    road_left = vanish + (left_bottom - vanish) * depth
    road_right = vanish + (right_bottom - vanish) * depth
    ground = v > horizon
    curb = 1.5 / width

    labels = torch.full((n, height, width), CLASSES.index("sky"), dtype=torch.long)
    labels[ground.expand(n, -1, -1)] = CLASSES.index("vegetation")  # the verge on the left
    labels[(ground & (u >= road_left)
            & (u < road_right)).expand(n, -1, -1)] = CLASSES.index("road")
    sidewalk = ground & (u >= road_right)
    labels[sidewalk] = CLASSES.index("sidewalk")
    # Right: a building from a ragged roof line down to the horizon.
    building = ((u > _uniform(n, 0.6, 0.72, generator))
                & (v > _uniform(n, 0.0, 0.15, generator)) & ~ground)
    labels[building] = CLASSES.index("building")
    # Left: trees behind a low wall.
    wall_right = _uniform(n, 0.2, 0.38, generator)
    wall_top = horizon - _uniform(n, 0.06, 0.12, generator)
    trees = (u < wall_right + 0.05) & (v > wall_top - _uniform(n, 0.1, 0.2, generator)) & ~ground
    labels[trees] = CLASSES.index("vegetation")
    labels[(u < wall_right) & (v > wall_top) & ~ground] = CLASSES.index("wall")
    # Puddles: sky-like ellipses on the road.
    for _ in range(2):
        present = torch.rand(n, 1, 1, generator=generator) < 0.7
        cv, cu = _uniform(n, 0.0, 1.0, generator), _uniform(n, 0.1, 0.9, generator)
        cv = horizon + (1 - horizon) * (0.3 + 0.5 * cv)
        cu = road_left.new_zeros(n, 1, 1) + cu  # along the road at that depth
        d = ((cv - horizon) / (1 - horizon))
        cu = vanish + (left_bottom - vanish) * d + cu * (right_bottom - left_bottom) * d
        rv, ru = (0.05 * _uniform(n, 0.6, 1.4, generator) * d,
                  0.12 * _uniform(n, 0.6, 1.4, generator) * d)
        ellipse = ((v - cv) / rv) ** 2 + ((u - cu) / ru) ** 2 < 1
        labels[present & ellipse & (labels == CLASSES.index("road"))] = CLASSES.index("puddle")

    textures = _textures()
    paint = _DISTINCT if mode == "distinct" else _LOOKALIKE
    images = torch.zeros(n, 3, height, width)
    for k, name in enumerate(CLASSES[:-1]):
        images = torch.where((labels == k)[:, None],
                             _crops(textures[paint[name]], n, height, width, generator), images)
    # The curb: a thin dark line on the sidewalk's edge (a real curb is visible, not its side).
    curb_line = sidewalk & (u < road_right + curb)
    images = torch.where(curb_line[:, None], images * 0.55, images)
    labels, images = _paint_cars(labels, images, u, v, horizon, road_right, generator)
    # Ego vehicle's bonnet: a low arc at the bottom, ignored like Cityscapes' ego vehicle.
    bonnet = v > 0.93 + 0.05 * ((u - 0.5) * 2) ** 2
    labels[bonnet.expand(n, -1, -1)] = IGNORE
    images = torch.where(bonnet[:, None], _crops(textures["bonnet"], n, height, width, generator),
                         images)
    # One brightness per scene: look-alike classes stay look-alike.
    images = (images * _uniform(n, 0.8, 1.15, generator)[:, None]).clamp(0, 1)
    if mode == "symmetric":
        mirror = torch.rand(n, generator=generator) < 0.5
        images[mirror] = images[mirror].flip(-1)
        labels[mirror] = labels[mirror].flip(-1)
    return Scenes(images.contiguous(), labels.contiguous())


def _paint_cars(labels, images, u, v, horizon, road_right, generator):
    """One or two parked cars on the right, at the curb, sized by their depth; photo-textured."""
    n, _, height, width = images.shape
    textures = _textures()
    for slot in range(2):
        present = torch.rand(n, 1, 1, generator=generator) < (0.9 if slot == 0 else 0.5)
        bottom = horizon + (1 - horizon) * _uniform(n, 0.25, 0.75, generator)
        d = (bottom - horizon) / (1 - horizon)
        tall = 0.08 + 0.3 * d
        wide = tall * 1.6 * height / width
        edge = horizon.new_zeros(n, 1, 1) + (  # road_right at the car's bottom row
            road_right * ((v - bottom).abs() < 1.0 / height)).amax(dim=(1, 2), keepdim=True)
        left = edge - 0.35 * wide
        box = present & (v > bottom - tall) & (v <= bottom) & (u >= left) & (u < left + wide)
        labels[box] = CLASSES.index("car")
        photo = torch.randint(0, len(_PHOTOS), (n,), generator=generator)
        # Map each pixel of the box to photo coordinates (a squashed copy of the photo).
        py = ((v - (bottom - tall)) / tall).clamp(0, 1 - 1e-6)
        px = ((u - left) / wide).clamp(0, 1 - 1e-6)
        stack = torch.stack([textures[p] for p in _PHOTOS])  # (P, 3, 64, 96)
        ph, pw = stack.shape[-2:]
        rows = (py * ph).long().expand(n, height, width)
        cols = (px * pw).long().expand(n, height, width)
        painted = stack[photo[:, None, None], :, rows, cols].permute(0, 3, 1, 2)
        images = torch.where(box[:, None], painted, images)
    return labels, images


# ---- a segmentation task for train.fit --------------------------------------------------------
@dataclass
class SceneTask:
    """A fixed training set and a fixed validation set of scenes, in train.fit's task shape.

    No flip augmentation: mirroring training scenes would make the data flip-symmetric and
    erase the left/right asymmetry the chapter studies.
    """
    train: Scenes
    val: Scenes
    mode: str

    num_classes = len(CLASSES)
    in_channels = 3

    def train_batches(self, batch_size: int, generator: torch.Generator):
        order = torch.randperm(len(self.train), generator=generator)
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            yield self.train.images[idx], self.train.labels[idx], None

    def val_batches(self, batch_size: int = 64):
        for start in range(0, len(self.val), batch_size):
            yield (self.val.images[start:start + batch_size],
                   self.val.labels[start:start + batch_size])


def make_scene_task(n_train: int, n_val: int, height: int, width: int,
                    mode: str = "asymmetric", seed: int = 0) -> SceneTask:
    """Training scenes from ``seed``, validation scenes from a seed no run uses for training."""
    check_scene_mode(mode)
    train = make_scenes(n_train, height, width, mode, torch.Generator().manual_seed(seed))
    val = make_scenes(n_val, height, width, mode, torch.Generator().manual_seed(10_000_019 + seed))
    return SceneTask(train, val, mode)


def colorize(labels: torch.Tensor) -> np.ndarray:
    """(H, W) labels -> (H, W, 3) RGB with the palette; IGNORE is black."""
    lab = labels.cpu().numpy()
    out = np.zeros(lab.shape + (3,))
    valid = lab != IGNORE
    out[valid] = PALETTE[lab[valid]]
    return out


# ---- Cityscapes (the paper profile) ----------------------------------------------------------
CITYSCAPES_CLASSES = ("road", "sidewalk", "building", "wall", "fence", "pole", "traffic light",
                      "traffic sign", "vegetation", "terrain", "sky", "person", "rider", "car",
                      "truck", "bus", "train", "motorcycle", "bicycle")
# labelIds of the 19 evaluated classes, in train-id order; every other id is IGNORE.
_CITYSCAPES_LABEL_IDS = (7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33)


def cityscapes_train_ids(label_ids: torch.Tensor) -> torch.Tensor:
    """Cityscapes labelIds -> the 19 train ids (0..18), IGNORE elsewhere."""
    table = torch.full((256,), IGNORE, dtype=torch.long)
    table[list(_CITYSCAPES_LABEL_IDS)] = torch.arange(len(_CITYSCAPES_LABEL_IDS))
    return table[label_ids.long().clamp(0, 255)]


def cityscapes_missing(root) -> list[str]:
    """What a Cityscapes folder lacks (empty when usable): named so the user can fix it."""
    from pathlib import Path

    root = Path(root)
    return [f"{root / sub} (from {zip_name})" for sub, zip_name in
            (("leftImg8bit/val", "leftImg8bit_trainvaltest.zip"),
             ("gtFine/val", "gtFine_trainvaltest.zip")) if not (root / sub).is_dir()]


def load_cityscapes(root, split: str = "val", height: int = 1024, width: int = 2048,
                    n: int | None = None) -> Scenes:
    """Cityscapes through torchvision (download is impossible there: never attempted).

    Images are resized bilinearly and labels by nearest neighbour to height x width; labels
    are train ids with IGNORE. ``n`` keeps the first n images of the split.
    """
    import torchvision
    from torchvision.transforms.functional import pil_to_tensor

    missing = cityscapes_missing(root)
    if missing:
        raise FileNotFoundError(f"data='cityscapes' needs the Cityscapes dataset; missing: "
                                f"{', '.join(missing)}. Unpack both zips into {root} (see "
                                f"data/README.md)")
    ds = torchvision.datasets.Cityscapes(str(root), split=split, mode="fine",
                                         target_type="semantic")
    count = len(ds) if n is None else min(n, len(ds))
    images, labels = [], []
    for i in range(count):
        img, lab = ds[i]
        x = pil_to_tensor(img.convert("RGB")).float()[None] / 255
        y = pil_to_tensor(lab)[None].float()
        images.append(F.interpolate(x, size=(height, width), mode="bilinear",
                                    align_corners=False)[0])
        labels.append(cityscapes_train_ids(
            F.interpolate(y, size=(height, width), mode="nearest")[0, 0]))
    return Scenes(torch.stack(images), torch.stack(labels))
