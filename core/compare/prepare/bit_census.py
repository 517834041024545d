"""How many layers and bytes of a written variant sit at 4, 8 and 16/32 bits: so a label never says more than the file.

Why: an "INT4" whose only quantized layer was stored at 8 bits (the mixed 4/8-bit rule on a model with one MatMul)
was labelled INT4 with the note "the rest at 4 bits". The census reads the file itself: MatMulNBits nodes by their
`bits` attribute, 4-bit embedding tables (uint8-packed, read by Gather + Mod/Div), int8 weights behind
DequantizeLinear or in QLinear/Integer ops, and the float weights left as they were.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class BitCensus:
    layers_4bit: int
    bytes_4bit: int
    layers_8bit: int
    bytes_8bit: int
    float_tensors: int
    bytes_float: int

    def to_dict(self) -> dict[str, int]:
        return asdict(self)

    def sentence(self) -> str:
        return (f"Stored weights: {self.layers_4bit} layer(s) at 4 bits ({self.bytes_4bit / 1e6:.2f} MB), "
                f"{self.layers_8bit} at 8 bits ({self.bytes_8bit / 1e6:.2f} MB), {self.float_tensors} tensor(s) in "
                f"16/32-bit float ({self.bytes_float / 1e6:.2f} MB).")


def census(model) -> BitCensus:
    """Count the weight storage of an in-memory ONNX ModelProto (no external data needed: sizes from dims)."""
    import math

    import onnx

    inits = {t.name: t for t in model.graph.initializer}

    def nbytes(name: str) -> int:
        t = inits.get(name)
        if t is None:
            return 0
        return math.prod(t.dims) * onnx.helper.tensor_dtype_to_np_dtype(t.data_type).itemsize

    four = eight = 0
    b4 = b8 = 0
    seen: set[str] = set()
    for node in model.graph.node:
        if node.op_type == "MatMulNBits" and len(node.input) > 1:
            bits = next((a.i for a in node.attribute if a.name == "bits"), 4)
            size = nbytes(node.input[1])
            seen.add(node.input[1])
            if bits <= 4:
                four, b4 = four + 1, b4 + size
            else:
                eight, b8 = eight + 1, b8 + size
        elif node.op_type == "Gather" and node.input and node.input[0].endswith("packed") and node.input[0] in inits:
            four, b4 = four + 1, b4 + nbytes(node.input[0])
            seen.add(node.input[0])
        elif node.op_type in ("DequantizeLinear", "QLinearConv", "QLinearMatMul", "MatMulInteger", "ConvInteger",
                              "DynamicQuantizeMatMul", "QAttention", "QGemm"):
            for name in node.input:
                t = inits.get(name)
                if t is not None and name not in seen and t.data_type in (onnx.TensorProto.INT8, onnx.TensorProto.UINT8) \
                        and math.prod(t.dims) >= 16:
                    seen.add(name)
                    eight, b8 = eight + 1, b8 + nbytes(name)
    floats = [t for n, t in inits.items() if n not in seen and t.data_type in
              (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16) and math.prod(t.dims) >= 16]
    return BitCensus(four, b4, eight, b8, len(floats), sum(nbytes(t.name) for t in floats))


def already_quantized(model) -> str | None:
    """Why an uploaded FP32 graph is in fact already quantized (its weights stored in 8 or 4 bits), else None."""
    c = census(model)
    if c.layers_4bit + c.layers_8bit == 0:
        return None
    bits = "INT4" if c.layers_4bit and c.bytes_4bit >= c.bytes_8bit else "INT8"
    return (f"This model is already {bits}: {c.layers_4bit + c.layers_8bit} layer(s) store their weights in "
            f"{'4' if bits == 'INT4' else '8'} bits ({(c.bytes_4bit + c.bytes_8bit) / 1e6:.1f} MB). Quantizing it "
            f"again has nothing to gain; the variants below show that, and FP16 only touches the float rest.")
