"""``ardens fetch`` against a local HTTP server on 127.0.0.1 (never an outside host)."""

from __future__ import annotations

import functools
import http.server
import threading
from pathlib import Path

import numpy as np
import pytest

from ardens.cli import main
from ardens.data import SPLITS, DataError, array_checksum, load_file
from ardens.fetch import MNIST_URL, fetch

SIZES = {"train": 20, "valid": 6, "test": 7}


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep test output clean
        pass


@pytest.fixture
def server(tmp_path):
    """Serve ``tmp_path/www`` on 127.0.0.1 (port chosen by the OS); yields (root, base URL)."""
    root = tmp_path / "www"
    root.mkdir()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


def _write_fixtures(root: Path, dim: int = 12) -> dict:
    rng = np.random.default_rng(0)
    expected = {}
    for split, n in SIZES.items():
        x = (rng.random((n, dim)) < 0.4).astype(np.uint8)
        np.savetxt(root / f"binarized_mnist_{split}.amat", x, fmt="%d")
        expected[split] = (x.shape, array_checksum(x))
    return expected


def test_fetch_downloads_parses_and_writes_npz(server, tmp_path):
    root, url = server
    expected = _write_fixtures(root)
    path = fetch(data_dir=tmp_path / "data", base_url=url, expected=expected, progress=False)
    assert path == tmp_path / "data" / "binarized_mnist.npz"
    d = load_file(path)
    for s in SPLITS:
        assert (d.split(s).shape, array_checksum(d.split(s))) == expected[s]
    assert sorted(p.name for p in path.parent.iterdir()) == ["binarized_mnist.npz"]  # no temporary leftovers


def test_fetch_via_cli_and_env_url(server, tmp_path, monkeypatch, capsys):
    root, url = server
    _write_fixtures(root)
    monkeypatch.setenv("ARDENS_MNIST_URL", url)
    # the real checksums do not match the fixtures: a clear error, nothing written
    assert main(["fetch", "binarized_mnist", "--data-dir", str(tmp_path / "d"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ardens: error: ") and url in err and "shape" in err and err.count("\n") == 1
    assert not (tmp_path / "d" / "binarized_mnist.npz").exists()
    assert MNIST_URL.startswith("http://www.cs.toronto.edu/")


def test_fetch_404_is_a_clear_error(server, tmp_path):
    _, url = server
    with pytest.raises(DataError, match="HTTP 404"):
        fetch(data_dir=tmp_path, base_url=url, expected={}, progress=False)


@pytest.mark.parametrize("damage", ["truncated", "corrupt", "checksum"])
def test_failed_fetch_never_destroys_an_existing_file(server, tmp_path, damage):
    root, url = server
    expected = _write_fixtures(root)
    data = tmp_path / "data"
    good = fetch(data_dir=data, base_url=url, expected=expected, progress=False)
    before = good.read_bytes()
    valid = root / "binarized_mnist_valid.amat"
    if damage == "truncated":
        valid.write_bytes(valid.read_bytes()[:-9])  # a cut last row: ragged
        pattern = "ragged|shape"
    elif damage == "corrupt":
        valid.write_text(valid.read_text().replace("1", "7", 1))
        pattern = "expected 0/1 values"
    else:
        lines = valid.read_text().splitlines()
        valid.write_text("\n".join(lines[::-1]) + "\n")  # same shape, different contents
        pattern = "checksum"
    with pytest.raises(DataError, match=pattern):
        fetch(data_dir=data, base_url=url, expected=expected, progress=False)
    assert good.read_bytes() == before
    assert sorted(p.name for p in data.iterdir()) == ["binarized_mnist.npz"]


def test_unfetchable_set_says_how_to_get_it(tmp_path):
    with pytest.raises(DataError, match="copy <name>.npz"):
        fetch("dna", data_dir=tmp_path)
