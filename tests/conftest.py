"""Shared fixtures: a tiny model with seeded random weights (fast on any CPU),
written as a real weights folder so the CLI and fresh processes can load it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from segpic_codec.segpic.codec import Codec
from segpic_codec.segpic.config import get_config
from segpic_codec.segpic.networks.model import SegPIC
from segpic_codec.segpic.weights.folder import save_weights
from segpic_codec.shared_data import configured_dir

REPO = Path(__file__).resolve().parent.parent
# $SEGPIC_SHARED, default ../shared; tests that need it skip when it is absent
SHARED = configured_dir() or REPO.parent / "shared"
KODAK = SHARED / "data" / "kodak"
SHIPPED = REPO / "weights" / "small" / "manifest.json"
EXAMPLE = REPO / "examples" / "parrots.png"


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory) -> Path:
    torch.manual_seed(1234)
    model = SegPIC(get_config("tiny"))
    # random weights give degenerate (almost empty) latents; scale the analysis
    # output up so the streams carry real symbols and the tests exercise them
    with torch.no_grad():
        model.y_gain.log_gain.add_(2.0)
        model.hyperprior.gain.log_gain.add_(1.0)
        model.transform_prototypes.gain.log_gain.add_(2.0)
        model.entropy_prototypes.gain.log_gain.add_(2.0)
    out = tmp_path_factory.mktemp("weights") / "tiny"
    save_weights(model, out, {"note": "seeded random weights for tests"})
    return out


@pytest.fixture(autouse=True)
def torch_threads_unchanged():
    """Every test leaves torch's thread count as it found it: one that changes it
    (directly, or through code that sets it) restores it, e.g. with `torch_threads`."""
    before = torch.get_num_threads()
    yield
    after = torch.get_num_threads()
    if after != before:
        torch.set_num_threads(before)
        pytest.fail(f"the test left torch on {after} threads, not {before}")


@pytest.fixture
def torch_threads():
    """`torch_threads(n)` sets torch's intra-op threads for one test; the count from
    before is restored after it (torch's thread count is process-wide)."""
    previous = torch.get_num_threads()
    yield torch.set_num_threads
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def tiny_codec(tiny_weights) -> Codec:
    return Codec.load(tiny_weights, device="cpu")


def sigint_as_in_a_terminal() -> None:
    """preexec_fn of a child that a test stops with SIGINT: a job started with & by
    a non-interactive shell (as CI runners and nohup start them) ignores SIGINT,
    and its children inherit that, so Python would not install its Ctrl-C handler
    in them; give the child the default disposition a terminal's process has."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def random_image(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth random image (closer to a photo than white noise)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(max(1, h // 8 + 1), max(1, w // 8 + 1), 3))
    big = np.kron(small, np.ones((8, 8, 1)))[:h, :w]
    noise = rng.normal(0, 6, size=(h, w, 3))
    return np.clip(big + noise, 0, 255).astype(np.uint8)
