"""The inputs a comparison runs on: the user's texts, or arrays for a model that takes no text.

"Test on your own data" is the point of the compare page, so typed text, a .txt (one text per line) and a
.csv (a text column) are all first-class; defaults exist only so the demo works with no input at all.
Texts are capped (count and length) because every text is run through every variant.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import QuantLensError

MAX_TEXTS = 64
MAX_TEXT_CHARS = 2000
MAX_INPUT_FILE_BYTES = 2 * 2**20
TEXT_COLUMN_NAMES = ("text", "sentence", "sentences", "input", "prompt", "query", "content")
DEFAULT_TEXTS: tuple[str, ...] = (
    "A man is playing a guitar on the street.",
    "Someone is strumming an acoustic guitar outdoors.",
    "The stock market fell sharply after the announcement.",
    "Shares dropped heavily when the news came out.",
    "How do I bake sourdough bread at home?",
    "What is a simple recipe for homemade bread?",
    "The cat is sleeping on the warm windowsill.",
    "A kitten naps in the sun by the window.",
    "Quantum computers use qubits instead of bits.",
    "Il pleut beaucoup à Paris aujourd'hui.",
    "Please reset my password; I cannot log in.",
    "The team won the championship in the final minute.",
)
# Symbolic dimensions in a non-text model are replaced by these sizes when inputs are generated.
GENERATED_DIM_SIZES = {"batch": 1, "batch_size": 1, "n": 1, "N": 1}
DEFAULT_SYMBOLIC_DIM = 8
DEFAULT_GENERATED_SAMPLES = 8


@dataclass(frozen=True)
class InputSpec:
    """One declared model input: name, numpy dtype name, shape (int, or str for a symbolic dim, or None)."""

    name: str
    dtype: str
    shape: tuple[int | str | None, ...]


def clean_texts(texts: list[str] | tuple[str, ...]) -> list[str]:
    """Strip, drop empties, cap length and count; raise if nothing is left."""
    cleaned = []
    for text in texts:
        if not isinstance(text, str):
            raise QuantLensError("bad_inputs", "Every input text must be a string.")
        text = " ".join(text.split())
        if text:
            cleaned.append(text[:MAX_TEXT_CHARS])
    if not cleaned:
        raise QuantLensError("no_inputs", "No input text was given (every line was empty).")
    return cleaned[:MAX_TEXTS]


def texts_from_string(text: str) -> list[str]:
    """Typed input: one text per line."""
    return clean_texts(text.splitlines())


def texts_from_bytes(data: bytes, kind: str) -> list[str]:
    """A .txt (one text per line) or .csv (column named text/sentence/...; else the first column)."""
    if len(data) > MAX_INPUT_FILE_BYTES:
        raise QuantLensError("inputs_too_large", f"The inputs file is larger than {MAX_INPUT_FILE_BYTES // 2**20} MiB.")
    try:
        content = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise QuantLensError("bad_inputs", "The inputs file is not UTF-8 text.") from None
    if kind == "txt":
        return texts_from_string(content)
    if kind != "csv":
        raise QuantLensError("bad_inputs", f"Unsupported inputs file type {kind!r}: use .txt, .csv or .npz.")
    try:
        rows = list(csv.reader(io.StringIO(content)))
    except csv.Error as exc:
        raise QuantLensError("bad_inputs", f"The CSV file could not be read: {exc}.") from None
    rows = [r for r in rows if any(cell.strip() for cell in r)]
    if not rows:
        raise QuantLensError("no_inputs", "The CSV file is empty.")
    header = [cell.strip().lower() for cell in rows[0]]
    column = next((header.index(n) for n in TEXT_COLUMN_NAMES if n in header), None)
    body = rows[1:] if column is not None else rows
    column = column or 0
    return clean_texts([r[column] for r in body if len(r) > column])


def texts_from_file(path: Path) -> list[str]:
    path = Path(path)
    if not path.is_file():
        raise QuantLensError("file_not_found", f"Inputs file {path.name} does not exist.")
    kind = path.suffix.lower().lstrip(".")
    if path.stat().st_size > MAX_INPUT_FILE_BYTES:
        raise QuantLensError("inputs_too_large", f"The inputs file is larger than {MAX_INPUT_FILE_BYTES // 2**20} MiB.")
    return texts_from_bytes(path.read_bytes(), kind)


def input_specs(session) -> list[InputSpec]:
    """Declared inputs of an onnxruntime session, with ORT's 'tensor(float)' types as numpy dtype names."""
    return [InputSpec(i.name, _ort_type_to_numpy(i.type), tuple(i.shape)) for i in session.get_inputs()]


_ORT_TYPES = {
    "tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64",
    "tensor(int64)": "int64", "tensor(int32)": "int32", "tensor(int16)": "int16", "tensor(int8)": "int8",
    "tensor(uint8)": "uint8", "tensor(bool)": "bool",
}


def _ort_type_to_numpy(ort_type: str) -> str:
    if ort_type not in _ORT_TYPES:
        raise QuantLensError("unsupported_input", f"Inputs of type {ort_type} are not supported; upload an .npz.")
    return _ORT_TYPES[ort_type]


def _concrete_shape(spec: InputSpec) -> tuple[int, ...]:
    dims = []
    for dim in spec.shape:
        if isinstance(dim, int) and dim > 0:
            dims.append(dim)
        elif isinstance(dim, str) and dim in GENERATED_DIM_SIZES:
            dims.append(GENERATED_DIM_SIZES[dim])
        else:
            dims.append(1 if not dims else DEFAULT_SYMBOLIC_DIM)  # a leading unknown is a batch axis
    return tuple(dims)


def generated_feeds(specs: list[InputSpec], count: int = DEFAULT_GENERATED_SAMPLES, seed: int = 0) -> list[dict[str, Any]]:
    """Random but reproducible inputs from the declared shapes: N(0,1) floats, small non-negative ints, bools.

    Symbolic dims become 1 (a leading one, taken as batch) or 8. Integer inputs get values in [0, 8) so
    index-like inputs stay in range for most models; models that need real data should get an .npz.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    feeds = []
    for _ in range(count):
        feed = {}
        for spec in specs:
            shape = _concrete_shape(spec)
            if spec.dtype.startswith("float"):
                feed[spec.name] = rng.standard_normal(shape).astype(spec.dtype)
            elif spec.dtype == "bool":
                feed[spec.name] = rng.integers(0, 2, shape).astype(bool)
            else:
                feed[spec.name] = rng.integers(0, 8, shape).astype(spec.dtype)
        feeds.append(feed)
    return feeds


def _shape_text(shape) -> str:
    return "(" + ", ".join("?" if not isinstance(d, int) or d <= 0 else str(d) for d in shape) + ")"


def check_array(spec: InputSpec, arr) -> None:
    """Refuse an array the model would reject (rank, fixed dims, a dtype that does not convert safely).

    Checked here so the user gets a sentence naming the input, not onnxruntime's InvalidArgument later.
    A batch axis (the first) of a fixed size is checked too, except that more rows split into samples.
    """
    import numpy as np

    if arr.dtype.kind not in "biuf":
        raise QuantLensError("bad_inputs", f"Input {spec.name} in the .npz has dtype {arr.dtype}; the model expects "
                                           f"{spec.dtype} (numbers or booleans only).")
    want = np.dtype(spec.dtype)
    same_family = (arr.dtype.kind in "iub" and want.kind in "iub") or (arr.dtype.kind in "iubf" and want.kind == "f")
    widening = np.can_cast(arr.dtype, want, casting="safe")
    if not (same_family or widening):
        raise QuantLensError("bad_inputs", f"Input {spec.name} in the .npz has dtype {arr.dtype}; the model expects "
                                           f"{spec.dtype}, which it cannot be converted to without changing its values.")
    if arr.ndim == len(spec.shape) + 1 and arr.shape[0] > 0:  # a leading samples axis (see feeds_from_npz)
        try:
            check_array(spec, arr[0])
            return
        except QuantLensError:
            pass  # one sample does not fit either: the rank mismatch below is the clearer sentence
    if arr.ndim != len(spec.shape):
        raise QuantLensError("bad_inputs", f"Input {spec.name} has {arr.ndim} dims {tuple(arr.shape)} in the .npz; "
                                           f"the model expects {len(spec.shape)}: {_shape_text(spec.shape)}.")
    for axis, (have, dim) in enumerate(zip(arr.shape, spec.shape, strict=True)):
        if isinstance(dim, int) and dim > 0 and have != dim:
            if axis == 0 and dim == 1 and have > 1:
                continue  # rows of a batch-1 model: split into one sample per row
            raise QuantLensError("bad_inputs", f"Input {spec.name} has shape {tuple(arr.shape)} in the .npz; the model "
                                               f"expects {_shape_text(spec.shape)} (axis {axis} must be {dim}).")
        if have == 0:
            raise QuantLensError("bad_inputs", f"Input {spec.name} in the .npz is empty (axis {axis} has size 0).")
    if arr.dtype.kind in "iu" and want.kind in "iu" and arr.size:
        info = np.iinfo(want)
        if arr.min() < info.min or arr.max() > info.max:
            raise QuantLensError("bad_inputs", f"Input {spec.name} in the .npz has values outside the {spec.dtype} range.")


def read_npz_arrays(path: Path) -> dict[str, Any]:
    """Every member of an .npz as a numpy array, or one `bad_inputs` sentence naming the member that is not one.

    numpy.load(allow_pickle=False) refuses object arrays, but a member that is not an .npy file at all (a pickle
    under an .npy name, plain bytes) comes back as raw bytes, which every later step would trip over.
    """
    import zipfile

    import numpy as np

    try:
        archive = np.load(path, allow_pickle=False)
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise QuantLensError("bad_inputs", "The inputs file is a single .npy array, not an .npz of arrays "
                                               "named after the model's inputs.")
        with archive:
            arrays = {name: archive[name] for name in archive.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError, NotImplementedError, RuntimeError) as exc:
        raise QuantLensError("bad_inputs", f"The .npz file could not be read ({exc.__class__.__name__}); it must "
                                           "hold plain numeric arrays (object arrays and pickles are refused).") from None
    for name, value in arrays.items():
        if not isinstance(value, np.ndarray):
            raise QuantLensError("bad_inputs", f"Member {name[:60]!r} of the .npz is not a numpy array (a pickle or "
                                               "raw bytes); only .npy arrays are accepted.")
    return arrays


def feeds_from_npz(path: Path, specs: list[InputSpec]) -> list[dict[str, Any]]:
    """Arrays named after the model's inputs; a leading axis of size > 1 is split into one sample per row.

    Loaded with allow_pickle=False: an .npz is a zip of .npy files, and object arrays would unpickle.
    """

    path = Path(path)
    if not path.is_file():
        raise QuantLensError("file_not_found", f"Inputs file {path.name} does not exist.")
    if path.stat().st_size > 64 * MAX_INPUT_FILE_BYTES:
        raise QuantLensError("inputs_too_large", "The .npz file is larger than 128 MiB.")
    arrays = read_npz_arrays(path)
    missing = [s.name for s in specs if s.name not in arrays]
    if missing:
        raise QuantLensError("bad_inputs", f"The .npz file lacks the model input(s): {', '.join(missing)}; it has: {', '.join(sorted(arrays)) or 'nothing'}.")
    if any(arrays[s.name].ndim == len(s.shape) + 1 for s in specs):
        return _feeds_with_sample_axis(arrays, specs)
    feeds_count = None
    for spec in specs:
        arr = arrays[spec.name]
        check_array(spec, arr)
        rows = arr.shape[0] if arr.ndim else 1
        feeds_count = rows if feeds_count is None else min(feeds_count, rows)
    count = min(feeds_count or 1, MAX_TEXTS)
    batch_fixed = any(isinstance(s.shape[0], int) and s.shape[0] > 1 for s in specs if s.shape)
    if batch_fixed or count <= 1:
        return [{s.name: arrays[s.name].astype(s.dtype, copy=False) for s in specs}]
    return [{s.name: arrays[s.name][i:i + 1].astype(s.dtype, copy=False) for s in specs} for i in range(count)]


def _feeds_with_sample_axis(arrays: dict, specs: list[InputSpec]) -> list[dict[str, Any]]:
    """Many samples for models whose inputs cannot be split on their first axis (scalars such as silero-vad's
    `sr`, state tensors whose batch axis is not the first): an array with one more axis than the input declares
    holds one sample per row of that extra, leading axis; an array of exactly the declared rank (a scalar
    sample rate) is the same for every sample."""
    per_sample = [s for s in specs if arrays[s.name].ndim == len(s.shape) + 1]
    counts = {arrays[s.name].shape[0] for s in per_sample}
    if len(counts) != 1:
        raise QuantLensError("bad_inputs", "Inputs with a leading samples axis must all have the same number of "
                                           "samples: " + ", ".join(f"{s.name} has {arrays[s.name].shape[0]}"
                                                                   for s in per_sample) + ".")
    for spec in specs:
        check_array(spec, arrays[spec.name])
    count = min(counts.pop(), MAX_TEXTS)
    return [{s.name: (arrays[s.name][i] if s in per_sample else arrays[s.name]).astype(s.dtype, copy=False)
             for s in specs} for i in range(count)]
