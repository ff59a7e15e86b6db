"""Backbone weights named by a path, an official release name, a timm hub id or a URL, as one local file.

    from contracts.weights import resolve_weights
    resolve_weights("work_dirs/distill/checkpoint.pth")            # a file: used where it is
    resolve_weights("tiny_vit_21m_22k_distill")                    # a microsoft/Cream release (TinyViT model zoo)
    resolve_weights("timm/tiny_vit_21m_224.dist_in22k_ft_in1k")    # a timm weight on the Hugging Face hub
    resolve_weights("https://host/weights.pth")                    # any URL
    → Weights(path, sha256, name, source, pretrain)

A release or URL is fetched once into `<cache>/<kind>/` (`TINYVIT_BENCH_WEIGHTS`, default `.cache/weights`), a
timm id into the Hugging Face hub cache (`HF_HUB_CACHE`, the layout `huggingface_hub` reads and writes:
`models--timm--<name>/snapshots/<revision>/model.safetensors`); afterwards, and offline, only the cache is read.
Downloads are atomic (a temp file in the cache folder, renamed when complete and checked), so a cut connection or
a kill never leaves a partial file as a cache entry. The sha256 of the file is always computed (it goes into the
records); where one is pinned (`sha256=` or the table below) a different file is refused and not cached.
`TINYVIT_BENCH_OFFLINE=1` (or `HF_HUB_OFFLINE=1`) forbids downloads: a name not in the cache is an error naming
what is missing, where it was looked for and how to place it there. `TINYVIT_BENCH_RELEASE_MIRROR` replaces the
release base URL (a local mirror; the tests' HTTP server on 127.0.0.1).

The official release names are those of the microsoft/Cream TinyViT model zoo (`models/tiny_vit.py`'s
`_checkpoint_url_format`, README "Model Zoo"); its files carry no published sha256, so none is pinned.
"""
from __future__ import annotations

import hashlib
import os
import re
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from .fileio import atomic_write, file_sha256
from .provenance import REPO_ROOT

RELEASE_BASE = "https://github.com/wkcn/TinyViT-model-zoo/releases/download/checkpoints/"
# release name → the pretraining its weights had (records' `backbone.pretrain`); the file is RELEASE_BASE + name.pth
RELEASES: dict[str, str] = {
    **{f"tiny_vit_{a}_22k_distill": "in21k-distill" for a in ("5m", "11m", "21m")},
    **{f"tiny_vit_{a}_22kto1k_distill": "in21k-distill-ft-in1k" for a in ("5m", "11m", "21m")},
    **{f"tiny_vit_21m_22kto1k_{s}_distill": "in21k-distill-ft-in1k" for s in (384, 512)},
    **{f"tiny_vit_{a}_1k": "in1k" for a in ("5m", "11m", "21m")},
}
PINNED_SHA256: dict[str, str] = {}  # release name → sha256, where one is known (none is published)
# timm pretrained tags (the part after the dot) → the pretraining they name
TIMM_TAG_PRETRAIN = {"dist_in22k": "in21k-distill", "dist_in22k_ft_in1k": "in21k-distill-ft-in1k", "in1k": "in1k",
                     "in22k": "in21k", "in21k": "in21k", "in22k_ft_in1k": "in21k-ft-in1k",
                     "in21k_ft_in1k": "in21k-ft-in1k"}
HUB_FILES = ("model.safetensors", "pytorch_model.bin")  # what timm reads from a hub repo, in its order
_TIMM_ID = re.compile(r"^(?:hf[-_]hub:)?timm/([A-Za-z0-9_.-]+)$")


class WeightsNotFound(FileNotFoundError):
    """Weights that are neither a file nor in the cache and cannot be fetched; the message says where it looked."""


class WeightsMismatch(ValueError):
    """A file whose sha256 is not the pinned one."""


@dataclass(frozen=True)
class Weights:
    """A resolved weights file: where it is, its sha256, what named it and (when the name says) its pretraining."""

    path: Path
    sha256: str
    name: str
    source: str  # 'path' | 'release' | 'timm-hub' | 'url'
    pretrain: str | None = None


def weights_cache() -> Path:
    return Path(os.environ.get("TINYVIT_BENCH_WEIGHTS", REPO_ROOT / ".cache" / "weights"))


def offline() -> bool:
    return any(os.environ.get(v, "").lower() in ("1", "true", "yes") for v in ("TINYVIT_BENCH_OFFLINE",
                                                                                 "HF_HUB_OFFLINE"))


def kind_of(name: str) -> str:
    """Which resolver `name` goes to ('path' | 'release' | 'timm-hub' | 'url'), without touching the network."""
    if Path(name).expanduser().is_file():
        return "path"
    if name in RELEASES:
        return "release"
    if _TIMM_ID.match(name):
        return "timm-hub"
    if name.startswith(("http://", "https://")):
        return "url"
    return "path"


def resolve_weights(name: str | os.PathLike, *, sha256: str | None = None, fetch: bool = True) -> Weights:
    """The local file `name` denotes (see the module doc), its sha256 checked against `sha256` (or the pinned one).

    `fetch=False` reads only the cache (a dry run): a missing entry raises `WeightsNotFound` as offline does."""
    text = os.fspath(name)
    kind = kind_of(text)
    allowed = fetch and not offline()
    if kind == "release":
        pin = sha256 or PINNED_SHA256.get(text)
        base = os.environ.get("TINYVIT_BENCH_RELEASE_MIRROR", RELEASE_BASE)
        url = base.rstrip("/") + "/" + f"{text}.pth"
        path = _cached_url(url, weights_cache() / "releases" / f"{text}.pth", pin, allowed, what=f"release {text!r}")
        return Weights(path, _checked(path, pin, text), text, kind, RELEASES[text])
    if kind == "timm-hub":
        model = _TIMM_ID.match(text).group(1)
        path = _hub_file(f"timm/{model}", allowed, sha256)
        return Weights(path, _checked(path, sha256, text), text, kind, TIMM_TAG_PRETRAIN.get(model.partition(".")[2]))
    if kind == "url":
        digest = hashlib.sha256(text.encode()).hexdigest()[:16]
        leaf = Path(text.split("?", 1)[0]).name or "weights"
        path = _cached_url(text, weights_cache() / "urls" / digest / leaf, sha256, allowed, what=f"URL {text}")
        return Weights(path, _checked(path, sha256, text), text, kind)
    path = Path(text).expanduser()
    if not path.is_file():
        raise WeightsNotFound(f"weights {text!r}: no such file ({path.resolve()}); not an official release name "
                              f"either (known: {sorted(RELEASES)}), nor a timm hub id (timm/<model>.<tag>) or a URL")
    return Weights(path, _checked(path, sha256, text), text, kind)


def _checked(path: Path, pinned: str | None, name: str) -> str:
    digest = file_sha256(path)
    if pinned and digest != pinned.lower():
        raise WeightsMismatch(f"weights {name!r} at {path}: sha256 {digest} is not the pinned {pinned}")
    return digest


def _cached_url(url: str, target: Path, pinned: str | None, allowed: bool, what: str) -> Path:
    """`target` if cached, else `url` streamed into it atomically (checked against `pinned` before the rename)."""
    if target.is_file():
        return target
    if not allowed:
        raise WeightsNotFound(f"{what}: not in the cache ({target}) and downloads are off (offline); fetch it on a "
                              f"machine with a network, or place the file from {url} at {target}")
    target.parent.mkdir(parents=True, exist_ok=True)

    def write(f) -> None:
        h = hashlib.sha256()
        with urllib.request.urlopen(url, timeout=60) as response:  # noqa: S310 - release and user-given URLs
            expected = response.headers.get("Content-Length")
            size = 0
            for block in iter(lambda: response.read(1 << 20), b""):
                h.update(block)
                f.write(block)
                size += len(block)
        if expected is not None and size != int(expected):
            raise WeightsNotFound(f"{what}: download from {url} ended after {size} of {expected} bytes")
        if pinned and h.hexdigest() != pinned.lower():
            raise WeightsMismatch(f"{what}: the file at {url} has sha256 {h.hexdigest()}, not the pinned {pinned}; "
                                  f"nothing was cached")

    try:
        atomic_write(target, write)
    except (urllib.error.URLError, OSError) as err:
        if isinstance(err, WeightsNotFound):
            raise
        raise WeightsNotFound(f"{what}: not in the cache ({target}) and the download from {url} failed "
                              f"({type(err).__name__}: {err}); place the file at {target}") from None
    return target


def _hub_file(repo_id: str, allowed: bool, pinned: str | None) -> Path:
    """A timm weights file from the Hugging Face hub cache, downloaded into it when allowed and absent."""
    from huggingface_hub import constants, hf_hub_download, try_to_load_from_cache
    cache = Path(os.environ.get("HF_HUB_CACHE", constants.HF_HUB_CACHE))
    for filename in HUB_FILES:
        found = try_to_load_from_cache(repo_id, filename, cache_dir=cache)
        if isinstance(found, str) and Path(found).is_file():
            return Path(found)
    if not allowed:
        raise WeightsNotFound(f"timm hub id {repo_id!r}: none of {list(HUB_FILES)} in the Hugging Face hub cache "
                              f"{cache / ('models--' + repo_id.replace('/', '--'))} and downloads are off (offline); "
                              f"run once with a network, or copy that folder from a machine that has it")
    errors = []
    for filename in HUB_FILES:
        try:  # huggingface_hub downloads to a .incomplete file and moves it into place when complete
            return Path(hf_hub_download(repo_id, filename, cache_dir=cache))
        except Exception as err:  # noqa: BLE001 - the hub raises many kinds; each is reported
            errors.append(f"{filename}: {type(err).__name__}: {str(err).splitlines()[0][:200]}")
    raise WeightsNotFound(f"timm hub id {repo_id!r}: not in the Hugging Face hub cache {cache} and the download "
                          f"failed ({'; '.join(errors)})")

