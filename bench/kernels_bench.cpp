// Throughput of every supported type on every ISA this CPU has, for a 4096-in x
// 14336-out weight matrix (a Llama-3-8B FFN projection):
//   Matvec/<type>/<isa>          float kernels (matvec), one thread, float activations
//   MatvecQ8/<type>/<isa>/<t>t   what decoding runs: quantize x, matmul_q8 on t threads
//                                (float types: matvec on t threads)
//   MatmulQ8/<type>/<isa>/2t     prefill: 512 vectors at once, two threads
//   MatmulQ8Decode/<type>/avx512/2t/<n>  2, 4 or 8 vectors: sequences decoding together
//   AttentionDecode/<isa>/<kv>kv<q>q/<ctx>  one token's attention over an F16 cache of
//                                <ctx> positions, 16 layers of <kv> KV heads with <q> query
//                                heads each (head_dim 128), two threads; GB/s counts the
//                                cache bytes read (KV of all layers: more than the L3)
//   AttentionDecodeQ8_0/...      the same over a Q8_0 cache (--kv-type q8_0)
// Q5_0R is Q5_0 repacked at load time (tensor/repack.h).
// Reported bytes/s (GB/s counter) count the weight bytes, the quantity that limits
// decoding; GFLOP/s counts 2 flops per weight per vector; us counts time per call.
//
//   ./koto_kernel_bench --benchmark_filter=Q4_K --benchmark_repetitions=3
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "base/thread_pool.h"
#include "koto/tensor_type.h"
#include "tensor/float16.h"
#include "tensor/kernel_table.h"
#include "tensor/kernels.h"
#include "tensor/quant_blocks.h"
#include "tensor/repack.h"

namespace koto::kernels {
namespace {

constexpr int64_t kInputs = 4096;
constexpr int64_t kOutputs = 14336;

// Where a type's f16 scale fields sit in its block: random bytes there could be
// infinities, NaNs or subnormals, which would make the timing meaningless.
std::vector<size_t> scale_offsets(TensorType type) {
  switch (type) {
    case TensorType::kQ4_0:
      return {offsetof(BlockQ4_0, d)};
    case TensorType::kQ4_1:
      return {offsetof(BlockQ4_1, d), offsetof(BlockQ4_1, m)};
    case TensorType::kQ5_0:
    case TensorType::kQ5_0R:  // made as Q5_0, then repacked (make_weights)
      return {offsetof(BlockQ5_0, d)};
    case TensorType::kQ5_1:
      return {offsetof(BlockQ5_1, d), offsetof(BlockQ5_1, m)};
    case TensorType::kQ8_0:
      return {offsetof(BlockQ8_0, d)};
    case TensorType::kQ2_K:
      return {offsetof(BlockQ2_K, d), offsetof(BlockQ2_K, dmin)};
    case TensorType::kQ3_K:
      return {offsetof(BlockQ3_K, d)};
    case TensorType::kQ4_K:
      return {offsetof(BlockQ4_K, d), offsetof(BlockQ4_K, dmin)};
    case TensorType::kQ5_K:
      return {offsetof(BlockQ5_K, d), offsetof(BlockQ5_K, dmin)};
    case TensorType::kQ6_K:
      return {offsetof(BlockQ6_K, d)};
    case TensorType::kIQ4_NL:
      return {offsetof(BlockIQ4_NL, d)};
    case TensorType::kIQ4_XS:
      return {offsetof(BlockIQ4_XS, d)};
    default:
      return {};
  }
}

// Random weights that decode to finite, model-like values.
std::vector<uint8_t> make_weights(TensorType type) {
  const TensorTypeInfo& info = tensor_type_info(type);
  std::vector<uint8_t> bytes(static_cast<size_t>(tensor_row_bytes(type, kInputs) * kOutputs));
  std::mt19937_64 rng(1234);
  for (size_t i = 0; i + 8 <= bytes.size(); i += 8) {
    const uint64_t r = rng();
    std::memcpy(&bytes[i], &r, 8);
  }
  std::normal_distribution<float> normal(0.0f, 0.05f);
  auto put16 = [&bytes](size_t at, uint16_t v) { std::memcpy(&bytes[at], &v, 2); };
  if (type == TensorType::kF32) {
    for (size_t i = 0; i < bytes.size(); i += 4) {
      const float v = normal(rng);
      std::memcpy(&bytes[i], &v, 4);
    }
  } else if (type == TensorType::kF16 || type == TensorType::kBF16) {
    for (size_t i = 0; i < bytes.size(); i += 2) {
      const float v = normal(rng);
      put16(i, type == TensorType::kF16 ? fp32_to_fp16(v) : fp32_to_bf16(v));
    }
  } else {
    const std::vector<size_t> offsets = scale_offsets(type);
    for (size_t block = 0; block < bytes.size(); block += static_cast<size_t>(info.block_bytes)) {
      for (size_t offset : offsets) {
        put16(block + offset, fp32_to_fp16(0.001f + 0.0001f * static_cast<float>(rng() % 100)));
      }
    }
  }
  if (type == TensorType::kQ5_0R) {
    const int64_t row_bytes = tensor_row_bytes(type, kInputs);
    std::vector<uint8_t> packed(bytes.size());
    for (int64_t r = 0; r < kOutputs; ++r) repack_q5_0_row(&bytes[r * row_bytes], &packed[r * row_bytes], kInputs);
    return packed;
  }
  return bytes;
}

// One weight matrix alive at a time: benchmarks are registered type by type.
const std::vector<uint8_t>& weights_for(TensorType type) {
  static TensorType cached_type = TensorType::kF32;
  static std::unique_ptr<std::vector<uint8_t>> cached;
  if (!cached || cached_type != type) {
    cached.reset();
    cached = std::make_unique<std::vector<uint8_t>>(make_weights(type));
    cached_type = type;
  }
  return *cached;
}

void run_matvec(benchmark::State& state, Isa isa, TensorType type) {
  const std::vector<uint8_t>& w = weights_for(type);
  std::vector<float> x(kInputs);
  std::mt19937 rng(5);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (float& v : x) v = normal(rng);
  std::vector<float> y(kOutputs);
  const MatvecFn matvec = kernel_table(isa).types[static_cast<uint32_t>(type)].matvec;
  const int64_t row_bytes = tensor_row_bytes(type, kInputs);
  for (auto _ : state) {
    matvec(w.data(), row_bytes, kInputs, x.data(), y.data(), kOutputs);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(w.size()));
}

// Rows split in n_threads equal ranges, one per thread of the pool.
void run_threaded(benchmark::State& state, Isa isa, TensorType type, int n_threads,
                  int64_t batch) {
  const std::vector<uint8_t>& w = weights_for(type);
  std::vector<float> x(static_cast<size_t>(kInputs * batch));
  std::mt19937 rng(5);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (float& v : x) v = normal(rng);
  std::vector<float> y(static_cast<size_t>(kOutputs * batch));
  const TypeKernels& kernels = kernel_table(isa).types[static_cast<uint32_t>(type)];
  const int64_t row_bytes = tensor_row_bytes(type, kInputs);
  ThreadPool pool(n_threads);
  Q8Activations activations;
  const int64_t rows_per_thread = (kOutputs + n_threads - 1) / n_threads;
  for (auto _ : state) {
    const bool integer = kernels.matmul_q8 != nullptr;
    if (integer) quantize_activations(x.data(), batch, kInputs, activations, q8_layout(type));
    const Q8Vectors q8{activations.q.data(), activations.d.data(), activations.dsum.data(),
                       activations.sums.data(), kInputs};
    // One thread runs on the calling thread, so the CPU-time column is the kernel's own
    // time: on a busy machine it is the steadier figure.
    const auto run = [&](int64_t t) {
      const int64_t begin = t * rows_per_thread;
      const int64_t end = std::min(kOutputs, begin + rows_per_thread);
      if (integer) {
        kernels.matmul_q8(w.data() + begin * row_bytes, row_bytes, q8, batch, y.data() + begin,
                          kOutputs, end - begin);
      } else {
        kernels.matvec(w.data() + begin * row_bytes, row_bytes, kInputs, x.data(),
                       y.data() + begin, end - begin);
      }
    };
    if (n_threads == 1) {
      run(0);
    } else {
      pool.parallel_for(n_threads, run);
    }
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  const double calls = static_cast<double>(state.iterations());
  state.counters["GB/s"] = benchmark::Counter(calls * static_cast<double>(w.size()) / 1e9,
                                              benchmark::Counter::kIsRate);
  state.counters["GFLOP/s"] = benchmark::Counter(
      calls * 2.0 * kInputs * kOutputs * static_cast<double>(batch) / 1e9,
      benchmark::Counter::kIsRate);
  state.counters["us"] = benchmark::Counter(calls * 1e-6, benchmark::Counter::kIsRate |
                                                          benchmark::Counter::kInvert);
}

// One token's attention in each of kLayers layers: per layer, the KV heads are split
// over two threads like the model's attention. The caches of all layers (16 x kv x 4 MiB
// at 8192 positions) are larger than the last-level cache, as a model's are.
void run_attention_decode(benchmark::State& state, Isa isa, int32_t kv_heads, int32_t group, int32_t n_ctx, bool q8_0) {
  constexpr int32_t kLayers = 16;
  constexpr int32_t kHeadDim = 128;
  // One head's keys (or values) of all positions: F16 keys tiled as the session keeps
  // them (random values, so the layout does not matter here), Q8_0 in tiles of 64
  // positions (random codes, then the blocks' scales).
  const size_t head_bytes = static_cast<size_t>(n_ctx) * (q8_0 ? kHeadDim / 32 * 34 : kHeadDim * 2);
  std::vector<uint8_t> keys(head_bytes * kv_heads * kLayers);
  std::vector<uint8_t> values(keys.size());
  std::mt19937 rng(3);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (std::vector<uint8_t>* cache : {&keys, &values}) {
    uint8_t* at = cache->data();
    if (q8_0) {
      const size_t tile_bytes = size_t{64} * kHeadDim / 32 * 34;
      for (size_t tile = 0; tile < cache->size() / tile_bytes; ++tile, at += tile_bytes) {
        for (size_t i = 0; i < size_t{64} * kHeadDim; ++i) at[i] = static_cast<uint8_t>(rng() % 255 + 1);
        const uint16_t scale = fp32_to_fp16(0.02f);
        for (size_t b = 0; b < size_t{64} * kHeadDim / 32; ++b) std::memcpy(at + 64 * kHeadDim + 2 * b, &scale, 2);
      }
    } else {
      for (size_t i = 0; i < cache->size() / 2; ++i, at += 2) {
        const uint16_t h = fp32_to_fp16(normal(rng));
        std::memcpy(at, &h, 2);
      }
    }
  }
  const int64_t q_dim = int64_t{kv_heads} * group * kHeadDim;
  std::vector<float> q(static_cast<size_t>(q_dim));
  for (float& v : q) v = normal(rng);
  std::vector<float> out(q.size());
  const AttentionF16Fn attention = kernel_table(isa).attention_f16;
  ThreadPool pool(2);
  for (auto _ : state) {
    for (int32_t layer = 0; layer < kLayers; ++layer) {
      pool.parallel_for(kv_heads, [&](int64_t g) {
        const size_t at = (static_cast<size_t>(layer) * kv_heads + static_cast<size_t>(g)) * head_bytes;
        AttentionBlock b{};
        b.q = &q[static_cast<size_t>(g * group * kHeadDim)];
        b.q_row_stride = q_dim;
        b.out = &out[static_cast<size_t>(g * group * kHeadDim)];
        b.out_row_stride = q_dim;
        b.n_rows = 1;
        b.n_heads = group;
        b.head_dim = kHeadDim;
        b.first_position = n_ctx - 1;
        b.keys = &keys[at];
        b.values = &values[at];
        b.n_ctx = n_ctx;
        b.scale = 1.0f / std::sqrt(static_cast<float>(kHeadDim));
        b.q8_0 = q8_0;
        b.keys_tiled = true;
        attention(b);
      });
    }
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  const double calls = static_cast<double>(state.iterations());
  state.counters["GB/s"] = benchmark::Counter(calls * 2.0 * static_cast<double>(keys.size()) / 1e9,
                                              benchmark::Counter::kIsRate);
  state.counters["us/layer"] = benchmark::Counter(calls * kLayers * 1e-6,
                                                  benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

void register_attention_benchmarks() {
  struct Shape {
    int32_t kv_heads;
    int32_t group;
  };
  // qwen2.5-1.5b (2 KV heads of 6 queries), llama-3-8b (8 of 4), llama-2-7b (32 of 1).
  for (Shape shape : {Shape{2, 6}, Shape{8, 4}, Shape{32, 1}}) {
    for (Isa isa : {Isa::kAvx512, Isa::kAvx2}) {
      if (!isa_supported(isa)) continue;
      for (bool q8_0 : {false, true}) {
        for (int32_t n_ctx : {512, 2048, 8192}) {
          const std::string name = std::string(q8_0 ? "AttentionDecodeQ8_0/" : "AttentionDecode/") + isa_name(isa) + "/" +
                                   std::to_string(shape.kv_heads) + "kv" + std::to_string(shape.group) + "q/" +
                                   std::to_string(n_ctx);
          benchmark::RegisterBenchmark(name.c_str(), [isa, shape, n_ctx, q8_0](benchmark::State& state) {
            run_attention_decode(state, isa, shape.kv_heads, shape.group, n_ctx, q8_0);
          })->Unit(benchmark::kMillisecond)->UseRealTime();
        }
      }
    }
  }
}

void register_benchmarks() {
  const TensorType types[] = {TensorType::kF32,  TensorType::kF16,    TensorType::kBF16,
                              TensorType::kQ4_0, TensorType::kQ4_1,   TensorType::kQ5_0,
                              TensorType::kQ5_0R,
                              TensorType::kQ5_1, TensorType::kQ8_0,   TensorType::kQ2_K,
                              TensorType::kQ3_K, TensorType::kQ4_K,   TensorType::kQ5_K,
                              TensorType::kQ6_K, TensorType::kIQ4_NL, TensorType::kIQ4_XS};
  for (TensorType type : types) {
    for (Isa isa : {Isa::kAvx512, Isa::kAvx2, Isa::kGeneric}) {
      if (!isa_supported(isa)) continue;
      const std::string name =
          "Matvec/" + std::string(tensor_type_name(type)) + "/" + isa_name(isa);
      benchmark::RegisterBenchmark(
          name.c_str(), [isa, type](benchmark::State& state) { run_matvec(state, isa, type); })
          ->Unit(benchmark::kMillisecond)
          ->UseRealTime();
      for (int threads : {1, 2}) {
        const std::string q8_name = "MatvecQ8/" + std::string(tensor_type_name(type)) + "/" +
                                    isa_name(isa) + "/" + std::to_string(threads) + "t";
        benchmark::RegisterBenchmark(q8_name.c_str(),
                                     [isa, type, threads](benchmark::State& state) {
                                       run_threaded(state, isa, type, threads, 1);
                                     })
            ->Unit(benchmark::kMicrosecond)
            ->UseRealTime();
      }
      // Few vectors at once: what a server's step multiplies when 2-8 sequences decode together.
      if (kernel_table(isa).types[static_cast<uint32_t>(type)].matmul_q8 != nullptr && isa == Isa::kAvx512) {
        for (int64_t batch : {2, 4, 8, 16, 32, 64}) {
          const std::string name = "MatmulQ8Decode/" + std::string(tensor_type_name(type)) + "/" + isa_name(isa) +
                                   "/2t/" + std::to_string(batch);
          benchmark::RegisterBenchmark(name.c_str(), [isa, type, batch](benchmark::State& state) {
            run_threaded(state, isa, type, 2, batch);
          })->Unit(benchmark::kMicrosecond)->UseRealTime();
        }
      }
      if (kernel_table(isa).types[static_cast<uint32_t>(type)].matmul_q8 != nullptr &&
          isa != Isa::kGeneric) {
        const std::string mm_name = "MatmulQ8/" + std::string(tensor_type_name(type)) + "/" +
                                    isa_name(isa) + "/2t";
        benchmark::RegisterBenchmark(mm_name.c_str(),
                                     [isa, type](benchmark::State& state) {
                                       run_threaded(state, isa, type, 2, 512);
                                     })
            ->Unit(benchmark::kMillisecond)
            ->UseRealTime();
      }
    }
  }
}

}  // namespace
}  // namespace koto::kernels

int main(int argc, char** argv) {
  koto::kernels::register_benchmarks();
  koto::kernels::register_attention_benchmarks();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
