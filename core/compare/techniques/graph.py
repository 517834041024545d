"""Graph facts and rewrites shared by the techniques: who consumes a tensor, which ops are there, Gemm→MatMul,
ORT's encoder fusions, and which Gather nodes read embedding tables.
"""

from __future__ import annotations


def consumer_counts(graph) -> dict[str, int]:
    """How many nodes read each tensor name: a shared weight must not be rewritten in place for one consumer."""
    counts: dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            counts[name] = counts.get(name, 0) + 1
    return counts


def op_counts(model) -> dict[str, int]:
    counts: dict[str, int] = {}
    for node in model.graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return counts


def opset_version(model, domain: str = "") -> int:
    for entry in model.opset_import:
        if entry.domain in (domain, "ai.onnx" if domain == "" else domain):
            return entry.version
    return 0


def rewrite_gemm_to_matmul(model) -> int:
    """Rewrite Gemm(A, W[, C]) with a constant W as MatMul(A, W') (+ Add(C')), in place; return how many.

    Why: ORT's weight-only INT4 quantizer and its dynamic INT8 quantizer handle MatMul; a Gemm (what
    torch.nn.Linear exports to for 2-D inputs, and what many non-transformer models use) would silently stay
    FP32. alpha, beta and transB are folded into the constants; transA=1 Gemms are left alone.
    """
    import numpy as np
    import onnx
    from onnx import numpy_helper

    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    consumers = consumer_counts(graph)
    new_nodes = []
    rewritten = 0
    for node in graph.node:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        weight = inits.get(node.input[1]) if node.op_type == "Gemm" and len(node.input) > 1 else None
        if weight is None or attrs.get("transA", 0) or node.domain not in ("", "ai.onnx"):
            new_nodes.append(node)
            continue
        w = numpy_helper.to_array(weight)
        if w.ndim != 2 or w.dtype.kind != "f":
            new_nodes.append(node)
            continue
        if attrs.get("transB", 0):
            w = w.T
        alpha = float(attrs.get("alpha", 1.0))
        if alpha != 1.0:
            w = w * np.asarray(alpha, dtype=w.dtype)
        base = node.name or node.output[0]
        w_name = f"{weight.name}_matmul"
        graph.initializer.append(numpy_helper.from_array(np.ascontiguousarray(w), w_name))
        if consumers.get(weight.name, 0) <= 1:
            graph.initializer.remove(weight)
        has_bias = len(node.input) > 2 and node.input[2] != ""
        mm_out = f"{node.output[0]}_matmul" if has_bias else node.output[0]
        new_nodes.append(onnx.helper.make_node("MatMul", [node.input[0], w_name], [mm_out], name=f"{base}_MatMul"))
        if has_bias:
            bias_name = node.input[2]
            beta = float(attrs.get("beta", 1.0))
            if beta != 1.0:
                bias = inits.get(bias_name)
                if bias is None:
                    scale_name = f"{base}_beta"
                    graph.initializer.append(numpy_helper.from_array(np.asarray(beta, dtype=w.dtype), scale_name))
                    scaled = f"{bias_name}_scaled_{base}"
                    new_nodes.append(onnx.helper.make_node("Mul", [bias_name, scale_name], [scaled], name=f"{base}_Beta"))
                    bias_name = scaled
                else:
                    b = numpy_helper.to_array(bias) * np.asarray(beta, dtype=w.dtype)
                    bias_name = f"{bias.name}_scaled_{base}"
                    graph.initializer.append(numpy_helper.from_array(b, bias_name))
            new_nodes.append(onnx.helper.make_node("Add", [mm_out, bias_name], [node.output[0]], name=f"{base}_Add"))
        rewritten += 1
    if rewritten:
        graph.ClearField("node")
        graph.node.extend(new_nodes)
    return rewritten


def fuse_encoder_ops(model, notes: list[str]):
    """ORT's transformer optimizer (model_type bert, graph-pattern fusions only, no session) before INT8.

    Why: it fuses each self-attention block into one Attention op, which dynamic quantization turns into
    QAttention, plus SkipLayerNormalization/BiasGelu/EmbedLayerNormalization: the flow ORT documents for
    BERT-like models. MiniLM: 2.02x faster than FP32 vs 1.94x unfused, cosine 0.9938 vs 0.9940, same size.
    Kept only when attention blocks were actually fused (a BERT-like encoder); any other graph, or any
    optimizer failure, goes on unfused.
    """
    import onnx

    if not has_attention_pattern(model):  # the optimizer's shape inference costs minutes on CNNs (Resize)
        return model
    import gc

    from core.compare.common.memory import release_memory

    # The optimizer leaves model-sized garbage in reference cycles (its shape-inference helpers), which Python's
    # object-count-triggered collector rarely visits: BERT-base (438 MB) peaked at 3.5 GB resident inside it and
    # held 2.2 GB after it. Collecting often while it runs, and once after, keeps it near two model copies.
    thresholds = gc.get_threshold()
    gc.set_threshold(50, 2, 2)
    try:
        from onnxruntime.transformers.optimizer import optimize_model

        copy = onnx.ModelProto()
        copy.CopyFrom(model)
        optimized = optimize_model(copy, model_type="bert", num_heads=0, hidden_size=0, opt_level=0)
        fused = optimized.get_fused_operator_statistics()
    except Exception:  # the optimizer raises whatever its pattern matchers hit; fusion is only an optimisation
        return model
    finally:
        gc.set_threshold(*thresholds)
    del copy
    if not fused.get("Attention"):
        del optimized
        release_memory()
        return model
    names = ("Attention", "SkipLayerNormalization", "BiasGelu", "EmbedLayerNormalization")
    notes.append("Transformer ops fused first (ORT's optimizer: " + ", ".join(
        f"{fused[n]} {n}" for n in names if fused.get(n)) + ") so attention runs as one quantized QAttention op.")
    result = optimized.model
    del optimized
    release_memory()
    if not any(entry.domain == "com.microsoft" for entry in result.opset_import):
        result.opset_import.append(onnx.helper.make_opsetid("com.microsoft", 1))
    return result


def has_attention_pattern(model) -> bool:
    """A Softmax and at least two MatMuls of two computed tensors (Q.K^T, weights.V): something to fuse.

    Checked before ORT's transformer optimizer because that optimizer runs symbolic shape inference several
    times whatever the graph: PaddleOCR's detector (no attention at all) spent 82 s there to fuse nothing.
    """
    constants = {t.name for t in model.graph.initializer}
    constants.update(o for n in model.graph.node if n.op_type == "Constant" for o in n.output)
    ops = [n.op_type for n in model.graph.node]
    dynamic_matmuls = sum(1 for n in model.graph.node if n.op_type == "MatMul" and len(n.input) == 2
                          and not (set(n.input) & constants))
    return "Softmax" in ops and dynamic_matmuls >= 2


def embedding_gathers(model, min_share: float) -> tuple[list[str], list[str]]:
    """Gather nodes on a constant table: (tables holding at least `min_share` of the float weights, the rest).

    Why not every table: each quantized table becomes a GatherBlockQuantized node, which costs run time.
    The word embeddings are the bulk of the bytes (MiniLM: 51% of the weights); position and token-type
    tables are under 1% together, so keeping them in float costs under 1 MB.
    """
    import onnx

    floats = (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16, onnx.TensorProto.DOUBLE)
    sizes = {}
    for tensor in model.graph.initializer:
        count = 1
        for d in tensor.dims:
            count *= d
        sizes[tensor.name] = count if tensor.data_type in floats else 0
    total = max(1, sum(sizes.values()))
    large, small = [], []
    for n in model.graph.node:
        if n.op_type == "Gather" and n.input and sizes.get(n.input[0]):
            (large if sizes[n.input[0]] >= min_share * total else small).append(n.name)
    return large, small


def rewrite_gemms_noted(model, notes: list[str]) -> int:
    """rewrite_gemm_to_matmul, saying so in the variant's notes when it changed anything."""
    gemms = rewrite_gemm_to_matmul(model)
    if gemms:
        notes.append(f"{gemms} Gemm layer(s) rewritten to MatMul+Add so they are quantized too.")
    return gemms
