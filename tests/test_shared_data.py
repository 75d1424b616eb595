"""SEGPIC_SHARED: where the bench, the tests and the scripts find the shared data."""

from __future__ import annotations

import pytest

from segpic_codec import shared_data
from segpic_codec.shared_data import SharedDataError


def test_the_variable_names_the_folder(monkeypatch, tmp_path):
    (tmp_path / "data" / "kodak").mkdir(parents=True)
    monkeypatch.setenv("SEGPIC_SHARED", str(tmp_path))
    assert shared_data.shared_dir() == tmp_path
    assert shared_data.kodak_dir() == tmp_path / "data" / "kodak"
    assert shared_data.anchors_dir() == tmp_path / "anchors" / "kodak"
    assert shared_data.kodak_image("kodim05") == tmp_path / "data" / "kodak" / "kodim05.png"


def test_default_is_shared_beside_the_checkout(monkeypatch):
    monkeypatch.delenv("SEGPIC_SHARED", raising=False)
    root = shared_data.checkout_root()
    assert root is not None and (root / "pyproject.toml").is_file()
    assert shared_data.configured_dir() == root.parent / "shared"


def test_missing_folder_is_one_line_error(monkeypatch, tmp_path):
    monkeypatch.setenv("SEGPIC_SHARED", str(tmp_path / "nope"))
    with pytest.raises(SharedDataError) as err:
        shared_data.shared_dir()
    assert "SEGPIC_SHARED" in str(err.value) and "\n" not in str(err.value)
    assert shared_data.shared_dir(required=False) is None
    assert shared_data.kodak_dir(required=False) is None


def test_installed_package_says_the_variable_is_unset(monkeypatch):
    monkeypatch.delenv("SEGPIC_SHARED", raising=False)
    monkeypatch.setattr(shared_data, "checkout_root", lambda: None)
    assert shared_data.configured_dir() is None
    with pytest.raises(SharedDataError, match="SEGPIC_SHARED is not set"):
        shared_data.kodak_dir()
    assert shared_data.kodak_dir(required=False) is None
