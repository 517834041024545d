"""What the user's inputs become: texts from typing, .txt and .csv; arrays from shapes or an .npz."""

from __future__ import annotations

import numpy as np
import pytest

from core.compare.inputs.user_data import (
    DEFAULT_TEXTS,
    MAX_TEXTS,
    InputSpec,
    clean_texts,
    feeds_from_npz,
    generated_feeds,
    texts_from_bytes,
    texts_from_string,
)
from core.errors import QuantLensError


def test_typed_text_is_one_input_per_non_empty_line():
    assert texts_from_string("first line\n\n  second   line \n") == ["first line", "second line"]


def test_csv_uses_the_text_column_when_there_is_one():
    data = b"id,label,text\n1,a,hello there\n2,b,\"a, quoted one\"\n"
    assert texts_from_bytes(data, "csv") == ["hello there", "a, quoted one"]


def test_csv_without_header_uses_the_first_column():
    assert texts_from_bytes(b"alpha,1\nbeta,2\n", "csv") == ["alpha", "beta"]


def test_empty_input_and_non_utf8_files_get_clear_errors():
    with pytest.raises(QuantLensError) as err:
        texts_from_string("\n  \n")
    assert err.value.code == "no_inputs"
    with pytest.raises(QuantLensError) as err:
        texts_from_bytes(b"\xff\xfe\x00bad", "txt")
    assert err.value.code == "bad_inputs"


def test_inputs_are_capped_in_count():
    assert len(clean_texts([f"t{i}" for i in range(500)])) == MAX_TEXTS


def test_defaults_are_a_dozen_varied_sentences():
    assert len(DEFAULT_TEXTS) == 12 and len(set(DEFAULT_TEXTS)) == 12


def test_generated_inputs_follow_declared_shapes_and_types():
    specs = [InputSpec("x", "float32", ("batch", 3, "h")), InputSpec("ids", "int64", (None, 5))]
    feeds = generated_feeds(specs, count=2)
    assert len(feeds) == 2
    assert feeds[0]["x"].shape == (1, 3, 8) and feeds[0]["x"].dtype == np.float32
    assert feeds[0]["ids"].shape == (1, 5) and feeds[0]["ids"].dtype == np.int64
    assert not np.array_equal(feeds[0]["x"], feeds[1]["x"])
    np.testing.assert_array_equal(generated_feeds(specs)[0]["x"], generated_feeds(specs)[0]["x"])  # reproducible


def test_npz_rows_become_samples_and_object_arrays_are_refused(tmp_path):
    specs = [InputSpec("x", "float32", ("batch", 4))]
    good = tmp_path / "good.npz"
    np.savez(good, x=np.ones((3, 4)))
    feeds = feeds_from_npz(good, specs)
    assert len(feeds) == 3 and feeds[0]["x"].shape == (1, 4) and feeds[0]["x"].dtype == np.float32
    bad = tmp_path / "bad.npz"
    np.savez(bad, x=np.array([{"a": 1}], dtype=object))
    with pytest.raises(QuantLensError) as err:
        feeds_from_npz(bad, specs)
    assert err.value.code == "bad_inputs"
    with pytest.raises(QuantLensError) as err:
        feeds_from_npz(good, [InputSpec("y", "float32", ("batch", 4))])
    assert "lacks" in err.value.message


def test_npz_arrays_are_checked_against_the_declared_inputs_before_the_model_runs(tmp_path):
    specs = [InputSpec("x", "float32", ("batch", 4)), InputSpec("ids", "int64", (1, 3))]

    def npz(**arrays):
        path = tmp_path / f"inputs{len(list(tmp_path.iterdir()))}.npz"
        np.savez(path, **arrays)
        return path

    ok = npz(x=np.zeros((2, 4)), ids=np.zeros((1, 3), np.int32))  # float64 and int32 convert without loss
    assert feeds_from_npz(ok, specs)[0]["ids"].dtype == np.int64
    cases = {
        "axis 1 must be 4": npz(x=np.zeros((2, 5), np.float32), ids=np.zeros((1, 3), np.int64)),
        "expects 2": npz(x=np.zeros((2, 4, 1), np.float32), ids=np.zeros((1, 3), np.int64)),
        "int64": npz(x=np.zeros((2, 4), np.float32), ids=np.zeros((1, 3), np.float32)),
        "numbers or booleans": npz(x=np.array([["a"] * 4]), ids=np.zeros((1, 3), np.int64)),
        "axis 1 must be 3": npz(x=np.zeros((2, 4), np.float32), ids=np.zeros((1, 2), np.int64)),
    }
    for message, path in cases.items():
        with pytest.raises(QuantLensError) as err:
            feeds_from_npz(path, specs)
        assert err.value.code == "bad_inputs" and message in str(err.value), message


def test_npz_members_that_are_pickles_bytes_or_a_lone_npy_are_bad_inputs_not_tracebacks(tmp_path):
    import pickle
    import zipfile

    specs = [InputSpec("x", "float32", ("batch", 4))]
    cases = {}
    with zipfile.ZipFile(tmp_path / "pickle.npz", "w") as archive:
        archive.writestr("x.npy", pickle.dumps({"not": "an array"}))
    cases["pickle.npz"] = "not a numpy array"
    with zipfile.ZipFile(tmp_path / "bytes.npz", "w") as archive:
        archive.writestr("x", b"plain bytes")
    cases["bytes.npz"] = "not a numpy array"
    with open(tmp_path / "lone.npz", "wb") as handle:
        np.save(handle, np.ones((1, 4)))
    cases["lone.npz"] = "single .npy array"
    (tmp_path / "junk.npz").write_bytes(b"neither zip nor npy")
    cases["junk.npz"] = "could not be read"
    for name, words in cases.items():
        with pytest.raises(QuantLensError) as err:
            feeds_from_npz(tmp_path / name, specs)
        assert err.value.code == "bad_inputs" and words in err.value.message, (name, err.value.message)
        assert "\n" not in err.value.message
