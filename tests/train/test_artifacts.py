"""Model artifacts and checkpoints verify their checksums: a tampered file (bytes changed, shapes
intact) is refused with an ArtifactError naming it, instead of loading silently."""

import numpy as np
import pytest

from recgraph.io import ArtifactError
from recgraph.models.retrieval.mf import MFBPR as MF
from recgraph.train.artifacts import load_model, save_model
from recgraph.train.checkpoint import load_checkpoint, save_checkpoint


def _flip_last_byte(path):
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    path.write_bytes(bytes(data))


def test_tampered_artifact_is_refused(tmp_path):
    model = MF(20, 30)
    save_model(tmp_path / "model", model)
    again, meta = load_model(tmp_path / "model")
    np.testing.assert_array_equal(again.user_emb.weight.detach().numpy(), model.user_emb.weight.detach().numpy())
    _flip_last_byte(tmp_path / "model" / "weights.safetensors")
    with pytest.raises(ArtifactError, match="weights.safetensors: does not match the sha256"):
        load_model(tmp_path / "model")


def test_tampered_or_malformed_checkpoint_is_refused(tmp_path):
    model = MF(20, 30)
    save_checkpoint(tmp_path / "ck", model, None, {"epoch": 3})
    assert load_checkpoint(tmp_path / "ck", MF(20, 30))["epoch"] == 3
    tensor = next((tmp_path / "ck").glob("state-*.safetensors"))
    _flip_last_byte(tensor)
    with pytest.raises(ArtifactError, match="does not match the sha256"):
        load_checkpoint(tmp_path / "ck", MF(20, 30))
    (tmp_path / "ck" / "meta.json").write_text("{truncated")
    with pytest.raises(ArtifactError, match="meta.json: is not valid JSON"):
        load_checkpoint(tmp_path / "ck", MF(20, 30))


def test_artifact_of_another_shape_names_the_file(tmp_path):
    save_model(tmp_path / "a", MF(20, 30))
    save_model(tmp_path / "b", MF(21, 30))
    (tmp_path / "a" / "weights.safetensors").write_bytes((tmp_path / "b" / "weights.safetensors").read_bytes())
    with pytest.raises(ArtifactError):
        load_model(tmp_path / "a")
