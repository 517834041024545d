"""Launch plans (core.sizing.launch): the command lines that realise a verdict, with nothing typed reaching a shell."""

from core import sizing
from core.sizing import catalog
from core.sizing.launch import launch_plan, plan_for_verdict
from core.sizing.verdict import answer


def verdict_and_plan(model, hw_id, runtime, precisions, context, batch=1, cards=1, kv="fp16", repo=None):
    hw = (catalog.find_hardware(hw_id),)
    m = sizing.model_from_catalog(model)
    r = sizing.calculate([m], precisions, context, batch, kv, runtime, hw)
    a = answer(r.models, r.estimates, hw, cards, kv, runtime)[0]
    return a.verdicts[0], plan_for_verdict(a.verdicts[0], a.cells, kv, repo)


def test_70b_on_one_4090_launches_llama_server_with_the_offload_layers_and_the_kv_type():
    v, p = verdict_and_plan("meta-llama/Llama-3.1-70B", "rtx-4090", "llama.cpp", ("Q4_K_M",), 8192, kv="q8_0",
                            repo="bartowski/Meta-Llama-3.1-70B-Instruct-GGUF")
    cmd = p.commands[0].command
    assert cmd.startswith("llama-server -hf bartowski/Meta-Llama-3.1-70B-Instruct-GGUF:Q4_K_M -c 8192 ")
    assert f"-ngl {v.offload.n_gpu_layers} " in cmd and "-ctk q8_0 -ctv q8_0" in cmd and "-fa on" in cmd
    ollama = p.commands[1].command
    assert "hf.co/bartowski/Meta-Llama-3.1-70B-Instruct-GGUF:Q4_K_M" in ollama and '"num_ctx": 8192' in ollama


def test_vllm_gets_max_model_len_max_num_seqs_and_the_tensor_parallel_size_it_fits_on():
    v, p = verdict_and_plan("meta-llama/Llama-3.1-70B", "h100-sxm-80gb", "vllm", ("fp16",), 8192, batch=16, cards=4,
                            repo="meta-llama/Llama-3.1-70B-Instruct")
    assert v.fits
    assert p.commands[0].command == ("vllm serve meta-llama/Llama-3.1-70B-Instruct --max-model-len 8192 "
                                     "--max-num-seqs 16 -tp 4 --gpu-memory-utilization 0.9")


def test_parallel_slots_share_llama_servers_context_so_it_is_multiplied():
    p = launch_plan("llama.cpp", "Q4_K_M", 8192, 4, "fp16", "org/model-GGUF")
    assert "-c 32768 -np 4" in p.commands[0].command and any("each request gets 8,192" in n for n in p.notes)


def test_a_hostile_repo_name_never_reaches_the_command_line():
    p = launch_plan("llama.cpp", "Q4_K_M", 4096, 1, "fp16", "org/x; rm -rf ~")
    assert "rm -rf" not in " ".join(c.command for c in p.commands) and "<org>/<repo>-GGUF" in p.commands[0].command
    p = launch_plan("vllm", "AWQ-INT4", 4096, 1, "fp16", "$(curl evil)/x")
    assert "curl evil" not in p.commands[0].command
