"""The image transforms of the transfer protocols (MoCo v3's linear-classification train / evaluation pipelines)."""
from __future__ import annotations

from typing import Any, Sequence

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ToRGB:
    """PIL image → 3-channel RGB (grey data sets such as Fashion-MNIST, ChestX)."""

    def __call__(self, image: Any) -> Any:
        return image.convert("RGB")

    def __repr__(self) -> str:
        return "ToRGB()"


def eval_transform(resolution: int, mean: Sequence[float], std: Sequence[float], crop_ratio: float = 224 / 256):
    """Resize to resolution/crop_ratio (256 for 224) → centre crop → tensor → normalise (MoCo v3 evaluation)."""
    from torchvision import transforms as T
    return T.Compose([ToRGB(), T.Resize(int(round(resolution / crop_ratio)), interpolation=T.InterpolationMode.BICUBIC),
                      T.CenterCrop(resolution), T.ToTensor(), T.Normalize(mean, std)])


def train_transform(resolution: int, mean: Sequence[float], std: Sequence[float]):
    """RandomResizedCrop + horizontal flip → tensor → normalise (MoCo v3 linear-classification training)."""
    from torchvision import transforms as T
    return T.Compose([ToRGB(), T.RandomResizedCrop(resolution, interpolation=T.InterpolationMode.BICUBIC),
                      T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(mean, std)])
