"""What every stage of a comparison shares: the options, ONNX files on disk, forked steps, memory and the clock.

Why a layer of its own: each stage below reads the options and loads or writes ONNX files, so these sit under all of
them and import no stage (tests/core/test_compare_layers.py holds it). Cheap to import: onnx and onnxruntime are
imported inside the functions that use them.

Modules: settings (CompareOptions and each technique's settings as declared data), onnx_io (load/save with
external data refused, fixed output paths, `make_session`), step_process (a heavy step in a forked child),
step_clock (wall time per step), memory (freeing memory between steps, the job memory budget).
"""

__all__ = ["memory", "onnx_io", "settings", "step_clock", "step_process"]
