"""Weights by release name, URL, timm hub id or path: a real HTTP server on 127.0.0.1 (never the internet) and a
Hugging Face hub cache laid out as `huggingface_hub` lays it out; atomic downloads, pinned sha256, offline reads."""
from __future__ import annotations

import hashlib
import http.server
import threading
from pathlib import Path

import pytest

from contracts import weights
from contracts.weights import WeightsMismatch, WeightsNotFound, resolve_weights

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB
SHA = hashlib.sha256(PAYLOAD).hexdigest()


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves PAYLOAD at /checkpoints/<name>.pth and /any/<leaf>; /cut/... announces it all, sends half and hangs up."""

    hits: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        type(self).hits.append(self.path)
        if self.path.startswith("/missing"):
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(PAYLOAD)))
        self.end_headers()
        self.wfile.write(PAYLOAD[: len(PAYLOAD) // 2] if self.path.startswith("/cut") else PAYLOAD)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture()
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    _Handler.hits = []
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture()
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("TINYVIT_BENCH_WEIGHTS", str(tmp_path / "weights"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    for var in ("TINYVIT_BENCH_OFFLINE", "HF_HUB_OFFLINE", "TINYVIT_BENCH_RELEASE_MIRROR"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path / "weights"


def _leftovers(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


def test_release_fetched_once_then_read_offline(server, cache, monkeypatch):
    monkeypatch.setenv("TINYVIT_BENCH_RELEASE_MIRROR", f"{server}/checkpoints/")
    got = resolve_weights("tiny_vit_21m_22k_distill")
    assert got.path == cache / "releases" / "tiny_vit_21m_22k_distill.pth"
    assert got.path.read_bytes() == PAYLOAD and got.sha256 == SHA
    assert (got.source, got.pretrain) == ("release", "in21k-distill")
    assert _Handler.hits == ["/checkpoints/tiny_vit_21m_22k_distill.pth"]
    monkeypatch.setenv("TINYVIT_BENCH_OFFLINE", "1")
    again = resolve_weights("tiny_vit_21m_22k_distill")
    assert again == got and len(_Handler.hits) == 1  # the cache, no second request


def test_cut_download_and_wrong_sha_leave_no_cache_entry(server, cache, monkeypatch):
    monkeypatch.setenv("TINYVIT_BENCH_RELEASE_MIRROR", f"{server}/cut/")
    with pytest.raises(WeightsNotFound, match=r"ended after 524288 of 1048576 bytes"):
        resolve_weights("tiny_vit_5m_1k")
    assert _leftovers(cache) == []
    monkeypatch.setenv("TINYVIT_BENCH_RELEASE_MIRROR", f"{server}/checkpoints/")
    with pytest.raises(WeightsMismatch, match="not the pinned 0{64}; nothing was cached"):
        resolve_weights("tiny_vit_5m_1k", sha256="0" * 64)
    assert _leftovers(cache) == []
    assert resolve_weights("tiny_vit_5m_1k", sha256=SHA).sha256 == SHA  # the right pin passes


def test_url_404_and_offline_miss_name_what_and_where(server, cache, monkeypatch):
    with pytest.raises(WeightsNotFound, match=r"URL .*/missing/w.pth: not in the cache \(.*urls/.*/w.pth\) and the "
                                              r"download from .* failed \(HTTPError"):
        resolve_weights(f"{server}/missing/w.pth")
    url = f"{server}/any/w.pth"
    with pytest.raises(WeightsNotFound, match=r"not in the cache .* downloads are off"):
        resolve_weights(url, fetch=False)
    assert resolve_weights(url).path.read_bytes() == PAYLOAD
    monkeypatch.setenv("TINYVIT_BENCH_OFFLINE", "1")
    assert resolve_weights(url).sha256 == SHA
    assert _leftovers(cache) == [resolve_weights(url).path]


def _hub_cache(root: Path, repo: str, filename: str, data: bytes) -> Path:
    """The layout huggingface_hub writes: blobs/<sha256>, snapshots/<revision>/<file> → blob, refs/main."""
    folder = root / ("models--" + repo.replace("/", "--"))
    revision = "a" * 40
    blob = folder / "blobs" / hashlib.sha256(data).hexdigest()
    blob.parent.mkdir(parents=True)
    blob.write_bytes(data)
    link = folder / "snapshots" / revision / filename
    link.parent.mkdir(parents=True)
    link.symlink_to(Path("../..") / "blobs" / blob.name)
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text(revision)
    return link


def test_timm_hub_id_from_the_hub_cache_offline(cache, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # never the internet: a miss must not try to download
    with pytest.raises(WeightsNotFound, match=r"timm hub id 'timm/tiny_vit_21m_224.dist_in22k_ft_in1k'.*"
                                              r"models--timm--tiny_vit_21m_224.dist_in22k_ft_in1k"):
        resolve_weights("timm/tiny_vit_21m_224.dist_in22k_ft_in1k")
    link = _hub_cache(tmp_path / "hub", "timm/tiny_vit_21m_224.dist_in22k_ft_in1k", "model.safetensors", PAYLOAD)
    got = resolve_weights("timm/tiny_vit_21m_224.dist_in22k_ft_in1k")
    assert got.path == link and got.sha256 == SHA and got.pretrain == "in21k-distill-ft-in1k"
    with pytest.raises(WeightsMismatch):
        resolve_weights("timm/tiny_vit_21m_224.dist_in22k_ft_in1k", sha256="f" * 64)


def test_paths_and_unknown_names(tmp_path, cache):
    path = tmp_path / "mine.pth"
    path.write_bytes(PAYLOAD)
    got = resolve_weights(str(path))
    assert (got.path, got.sha256, got.source, got.pretrain) == (path, SHA, "path", None)
    with pytest.raises(WeightsNotFound, match=r"'tiny_vit_99m_1k': no such file .*known: \['tiny_vit_11m_1k'"):
        resolve_weights("tiny_vit_99m_1k")
    assert weights.kind_of("tiny_vit_21m_22kto1k_384_distill") == "release"
