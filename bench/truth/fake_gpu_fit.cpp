// llama-fit-params with pretend GPUs of a given size, for a CPU-only build of llama.cpp.
//
// Why: llama.cpp's fit (common/fit.cpp, common_fit_params) plans -ngl / -ts / MoE overrides against the free
// memory of the model's GPU devices. A CPU-only build has none (llama_model_n_devices() == 0), so
// llama-fit-params there only checks host memory and never plans an offload. This file registers one ggml
// device per budget in QUANTLENS_FAKE_GPU_MIB ("24576" or "24576,12288"), of type GPU, reporting that many MiB
// free and total, then runs llama-fit-params' own main (tools/fit-params/fit-params.cpp, linked unchanged from
// the build's libllama-fit-params-impl.a). llama.cpp's fit logic, model loading (no_alloc: nothing allocated, no
// weight read) and KV / compute buffer sizing run as shipped; only the device is pretend.
//
// What the pretend device copies from ggml-cuda (b11434, ggml/src/ggml-cuda/ggml-cuda.cu) so the sizes match a
// CUDA card: buffer alignment 128, quantized rows padded to MATRIX_ROW_PADDING = 512 in get_alloc_size, and
// offload_op for batches >= 32 (GGML_OP_OFFLOAD_MIN_BATCH), which makes the compute buffer hold a copy of
// CPU-resident weights during prompt processing. What it does not copy: CUDA's flash-attention scratch sizes
// and its compute kernels' choices (ops are "supported" as the CPU backend supports them), and pipeline
// parallelism (no events), so compute buffers are the CPU graph's at CUDA alignment.
//
// Build: bench/truth/fit_params.py compiles this against the static libraries of the truth harness build.

#include "ggml-backend-impl.h"
#include "ggml-backend.h"
#include "ggml-cpu.h"
#include "ggml.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

int llama_fit_params(int argc, char ** argv);  // tools/fit-params/fit-params.cpp

namespace {

constexpr int64_t MATRIX_ROW_PADDING = 512;  // ggml-cuda/common.cuh

struct fake_gpu {
    std::string name;
    std::string description;
    size_t memory = 0;
    int min_batch = 32;
    ggml_backend_buffer_type buft{};
    ggml_backend_device dev{};
};

std::vector<fake_gpu *> g_gpus;
ggml_backend_reg g_reg{};

fake_gpu * of_buft(ggml_backend_buffer_type_t buft) { return static_cast<fake_gpu *>(buft->context); }
fake_gpu * of_dev(ggml_backend_dev_t dev) { return static_cast<fake_gpu *>(dev->context); }

const char * buft_get_name(ggml_backend_buffer_type_t buft) { return of_buft(buft)->name.c_str(); }

ggml_backend_buffer_t buft_alloc_buffer(ggml_backend_buffer_type_t buft, size_t size) {
    // The fit pass makes only zero-size dummy buffers (ggml_backend_buft_alloc_buffer answers those itself);
    // a real allocation would mean llama.cpp is loading weights, which this tool must never do.
    fprintf(stderr, "fake_gpu_fit: refusing to allocate %zu bytes on %s\n", size, of_buft(buft)->name.c_str());
    return nullptr;
}

size_t buft_get_alignment(ggml_backend_buffer_type_t) { return 128; }

size_t buft_get_max_size(ggml_backend_buffer_type_t) { return SIZE_MAX; }

size_t buft_get_alloc_size(ggml_backend_buffer_type_t, const ggml_tensor * tensor) {
    size_t size = ggml_nbytes(tensor);
    const int64_t ne0 = tensor->ne[0];
    if (ggml_is_quantized(tensor->type) && ne0 % MATRIX_ROW_PADDING != 0) {
        size += ggml_row_size(tensor->type, MATRIX_ROW_PADDING - ne0 % MATRIX_ROW_PADDING);
    }
    return size;
}

bool buft_is_host(ggml_backend_buffer_type_t) { return false; }

const char * dev_get_name(ggml_backend_dev_t dev) { return of_dev(dev)->name.c_str(); }
const char * dev_get_description(ggml_backend_dev_t dev) { return of_dev(dev)->description.c_str(); }

void dev_get_memory(ggml_backend_dev_t dev, size_t * free, size_t * total) {
    *free = of_dev(dev)->memory;
    *total = of_dev(dev)->memory;
}

enum ggml_backend_dev_type dev_get_type(ggml_backend_dev_t) { return GGML_BACKEND_DEVICE_TYPE_GPU; }

void dev_get_props(ggml_backend_dev_t dev, ggml_backend_dev_props * props) {
    props->name = dev_get_name(dev);
    props->description = dev_get_description(dev);
    props->type = GGML_BACKEND_DEVICE_TYPE_GPU;
    props->device_id = nullptr;
    dev_get_memory(dev, &props->memory_free, &props->memory_total);
    props->caps = {/* async */ false, /* host_buffer */ false, /* buffer_from_host_ptr */ false, /* events */ false,
                   /* mmap_support */ false};
}

ggml_backend_t dev_init_backend(ggml_backend_dev_t dev, const char *) {
    // The CPU backend's graph code under this device: the scheduler only sizes graphs here (no_alloc), never runs them.
    ggml_backend_t backend = ggml_backend_cpu_init();
    if (backend != nullptr) {
        backend->device = dev;
    }
    return backend;
}

ggml_backend_buffer_type_t dev_get_buffer_type(ggml_backend_dev_t dev) { return &of_dev(dev)->buft; }

bool dev_supports_op(ggml_backend_dev_t, const ggml_tensor * op) {
    ggml_backend_dev_t cpu = ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU);
    return ggml_backend_dev_supports_op(cpu, op);
}

bool dev_supports_buft(ggml_backend_dev_t dev, ggml_backend_buffer_type_t buft) { return buft == &of_dev(dev)->buft; }

int64_t op_batch_size(const ggml_tensor * op) {  // ggml-cuda.cu get_op_batch_size
    switch (op->op) {
        case GGML_OP_GET_ROWS:
            return 0;
        case GGML_OP_MUL_MAT:
            return op->ne[1];
        case GGML_OP_MUL_MAT_ID:
        case GGML_OP_ROPE:
        case GGML_OP_ROPE_BACK:
            return op->ne[2];
        default:
            return ggml_nrows(op);
    }
}

bool dev_offload_op(ggml_backend_dev_t dev, const ggml_tensor * op) { return op_batch_size(op) >= of_dev(dev)->min_batch; }

const char * reg_get_name(ggml_backend_reg_t) { return "FAKEGPU"; }
size_t reg_get_device_count(ggml_backend_reg_t) { return g_gpus.size(); }
ggml_backend_dev_t reg_get_device(ggml_backend_reg_t, size_t index) { return &g_gpus.at(index)->dev; }
void * reg_get_proc_address(ggml_backend_reg_t, const char *) { return nullptr; }

void register_fake_gpus(const char * spec) {
    const char * env_batch = getenv("GGML_OP_OFFLOAD_MIN_BATCH");
    const int min_batch = env_batch ? atoi(env_batch) : 32;
    std::string s(spec);
    size_t pos = 0;
    while (pos <= s.size()) {
        const size_t comma = s.find(',', pos);
        const std::string item = s.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
        const unsigned long long mib = std::strtoull(item.c_str(), nullptr, 10);
        if (mib == 0) {
            fprintf(stderr, "fake_gpu_fit: bad QUANTLENS_FAKE_GPU_MIB entry '%s'\n", item.c_str());
            exit(2);
        }
        auto * g = new fake_gpu;
        g->name = "FAKEGPU" + std::to_string(g_gpus.size());
        g->description = "pretend GPU, " + std::to_string(mib) + " MiB";
        g->memory = size_t(mib) * 1024 * 1024;
        g->min_batch = min_batch;
        g->buft.iface = {buft_get_name, buft_alloc_buffer, nullptr, buft_get_alignment, buft_get_max_size,
                         buft_get_alloc_size, nullptr, buft_is_host};
        g->buft.device = &g->dev;
        g->buft.context = g;
        g->dev.iface = {dev_get_name, dev_get_description, dev_get_memory, dev_get_type, dev_get_props,
                        dev_init_backend, dev_get_buffer_type, nullptr, nullptr, dev_supports_op, dev_supports_buft,
                        dev_offload_op, nullptr, nullptr, nullptr};
        g->dev.reg = &g_reg;
        g->dev.context = g;
        g_gpus.push_back(g);
        if (comma == std::string::npos) {
            break;
        }
        pos = comma + 1;
    }
    g_reg.api_version = GGML_BACKEND_API_VERSION;
    g_reg.iface = {reg_get_name, reg_get_device_count, reg_get_device, reg_get_proc_address};
    g_reg.context = nullptr;
    ggml_backend_register(&g_reg);
}

}  // namespace

int main(int argc, char ** argv) {
    const char * spec = getenv("QUANTLENS_FAKE_GPU_MIB");
    if (spec == nullptr || *spec == '\0') {
        fprintf(stderr, "fake_gpu_fit: set QUANTLENS_FAKE_GPU_MIB to the pretend cards' MiB, e.g. 24576 or 24576,12288\n");
        return 2;
    }
    register_fake_gpus(spec);
    return llama_fit_params(argc, argv);
}
