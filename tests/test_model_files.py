"""A model file that is there but damaged is reported as damaged, with its path and what to do."""

from __future__ import annotations

from pathlib import Path

import pytest

from shoelabel.errors import UserError


def _saved_cnn(path: Path) -> bytes:
    from modeling.architectures import build_cnn

    build_cnn(2, input_size=32, widths=(4, 8), seed=0).save(path)
    return path.read_bytes()


@pytest.mark.parametrize("damage", ["garbage", "cut short", "empty"])
def test_a_damaged_model_file_is_not_reported_as_missing(tmp_path: Path, damage: str) -> None:
    from modeling.registry import ModelNotFoundError, load_fresh

    path = tmp_path / "cnn-v3.keras"
    whole = _saved_cnn(path)
    damaged = {"garbage": b"not a model at all" * 100, "cut short": whole[: len(whole) // 2], "empty": b""}
    path.write_bytes(damaged[damage])
    with pytest.raises(UserError) as err:
        load_fresh(path)
    message = str(err.value)
    assert not isinstance(err.value, ModelNotFoundError)
    assert "not found" not in message.lower() and "missing" not in message.lower()
    assert f"Model file damaged: {path}" in message
    assert "not a whole .keras zip file" in message and "python -m modeling.train" in message
