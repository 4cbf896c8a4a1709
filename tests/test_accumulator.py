import numpy as np
import pytest

from overlay_core.accumulator import Accumulator, ScoreWeights
from overlay_core.errors import InputError, StateFileError


def test_deltas_are_idempotent_traceable_and_persisted(tmp_path):
    path = tmp_path / "acc.safetensors"
    acc = Accumulator(path)
    assert acc.apply_delta("hash", "table", -10.0, "v1") is True
    assert acc.apply_delta("hash", "table", -10.0, "v1") is False  # same verdict twice: no change
    assert acc.apply_delta("hash", "table", 2.5, "v2") is True
    acc.add_edge("hash", "map", "v3")
    acc.save()
    again = Accumulator(path)
    assert again.global_score("hash", "table") == pytest.approx(-7.5)
    assert again.verdicts_for("hash", "table") == ("v1", "v2")
    assert again.expert_edges("hash") == ["map"]
    assert again.apply_delta("hash", "table", -10.0, "v1") is False  # idempotency survives a reload
    assert again.global_score("unseen", "edge") == 0.0


def test_reverting_restores_exactly(tmp_path):
    acc = Accumulator()
    acc.apply_delta("a", "b", -10.0, "v1")
    acc.apply_delta("a", "b", 10.0, "revert-v1")
    assert acc.global_score("a", "b") == 0.0


def test_weights_combine_and_validate():
    w = ScoreWeights(w_adj=1, w_ctx=2, w_llm=3, w_glob=4, w_rel=5)
    assert w.combine(log_p_adj=-1.0, ctx=1.0, llm=-2.0, glob=-0.5, rel=0.2) == pytest.approx(-1 + 2 - 6 - 2 + 1)
    with pytest.raises(InputError, match="w_llm"):
        ScoreWeights(w_llm=float("nan"))


def test_truncated_accumulator_file_is_refused_and_not_overwritten(tmp_path):
    path = tmp_path / "acc.safetensors"
    acc = Accumulator(path)
    acc.apply_delta("a", "b", 1.0, "v1")
    acc.save()
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(StateFileError, match="acc.safetensors"):
        Accumulator(path)
    assert path.read_bytes() == data[: len(data) // 2]


def test_file_is_labelled(tmp_path):
    import json

    from safetensors import safe_open

    path = tmp_path / "acc.safetensors"
    acc = Accumulator(path)
    acc.apply_delta("x", "y", 1.0, "v")
    acc.save()
    with safe_open(str(path), "np") as f:
        meta = f.metadata()
        assert meta["overlay.kind"] == "accumulator"
        assert set(json.loads(meta["overlay.tensors"])) == set(f.keys())
        assert np.array_equal(f.get_tensor("score"), np.array([1.0], dtype=np.float32))


def _saved(tmp_path):
    from overlay_core import storage
    from overlay_core.accumulator import FORMAT_VERSION, KIND

    good = tmp_path / "good.safetensors"
    acc = Accumulator(good)
    acc.apply_delta("is", "a", -1.0, "vd_1")
    acc.save()
    return storage.load(good, kind=KIND, version=FORMAT_VERSION)


@pytest.mark.parametrize("drop", ["all", "score"])
def test_a_labelled_file_without_its_tensors_is_a_clear_error(tmp_path, drop):
    """A valid safetensors file whose labels list the accumulator's tensors and applied verdicts, holding none (or
    not all) of those tensors: a StateFileError naming the file and the fix, never a KeyError."""
    from overlay_core import storage
    from overlay_core.accumulator import _DESCRIPTIONS, FORMAT_VERSION, KIND

    t, meta = _saved(tmp_path)
    kept = {} if drop == "all" else {k: v for k, v in t.items() if k != drop}
    path = tmp_path / "accumulator.safetensors"
    storage.save(path, kept, kind=KIND, version=FORMAT_VERSION, descriptions=_DESCRIPTIONS,
                 metadata={"overlay.applied": meta["overlay.applied"]})
    before = path.read_bytes()
    with pytest.raises(StateFileError, match="lacks the tensor.*overlay review apply"):
        Accumulator(path)
    assert path.read_bytes() == before  # nothing overwritten


def test_a_labelled_file_with_zero_tensors_that_claims_none_loads_as_empty(tmp_path):
    """Metadata only, no tensors, no applied verdicts: an accumulator nobody wrote to (it used to raise
    KeyError: 'edge_utf8'); it loads empty and saves back as a complete file."""
    from overlay_core import storage
    from overlay_core.accumulator import FORMAT_VERSION, KIND

    path = tmp_path / "accumulator.safetensors"
    storage.save(path, {}, kind=KIND, version=FORMAT_VERSION, descriptions={})
    acc = Accumulator(path)
    assert acc.n_edges == 0 and acc.deltas() == [] and acc.global_score("is", "a") == 0.0
    assert acc.apply_delta("is", "a", -1.0, "vd_1")
    acc.save()
    assert Accumulator(path).global_score("is", "a") == -1.0


def test_a_safetensors_file_that_is_not_an_accumulator_says_what_to_do(tmp_path):
    from safetensors.numpy import save_file

    path = tmp_path / "accumulator.safetensors"
    save_file({}, str(path), metadata={"note": "written by another tool"})
    with pytest.raises(StateFileError) as exc:
        Accumulator(path)
    assert str(exc.value) == (f"{path} is not an Overlay accumulator file (overlay.kind=None); delete {path} and run "
                              "`overlay review apply` (it is rebuilt from the verdict log), or restore a backup")
