// Pools of valid quantized blocks of random values, from which `koto synth` assembles
// gigabytes of weights quickly: quantizing every value of a 7B model would take many
// minutes, copying pool blocks picked at random takes seconds and gives the same bytes
// per row, the same types and finite scales.
//
// A pool holds kPoolUnits units of one type; a unit is one block, or 32 values for the
// types whose block is a single value (F32, F16, BF16). Values are N(0, sigma²) with
// one value in 1000 an outlier of 4-10 sigma. A pool is immutable once built and can be
// read from several threads; RandomBlockPools is not thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "koto/gguf_writer.h"
#include "koto/tensor_type.h"

namespace koto::tools {

class RandomBlockPool {
 public:
  static constexpr int64_t kPoolUnits = 8192;

  RandomBlockPool(TensorType type, float sigma, uint64_t seed);

  TensorType type() const { return type_; }
  int64_t unit_values() const { return unit_values_; }
  int64_t unit_bytes() const { return unit_bytes_; }

  // Fills `dst` with one row of n values (a multiple of unit_values(), else
  // kInvalidArgument) made of pool units chosen by `state` (a xorshift state, advanced).
  void fill_row(uint8_t* dst, int64_t n, uint64_t& state) const;

  // Writes n_rows rows of n values to the sink in chunks of a few MB, calling
  // progress(bytes) after each chunk. The same seed gives the same bytes.
  void write_rows(GgufDataSink& sink, int64_t n, int64_t n_rows, uint64_t seed,
                  const std::function<void(uint64_t)>& progress) const;

 private:
  TensorType type_;
  int64_t unit_values_;
  int64_t unit_bytes_;
  std::string units_;  // kPoolUnits × unit_bytes_
};

// One pool per type, built on first use.
class RandomBlockPools {
 public:
  RandomBlockPools(float sigma, uint64_t seed) : sigma_(sigma), seed_(seed) {}
  const RandomBlockPool& get(TensorType type);

 private:
  float sigma_;
  uint64_t seed_;
  std::map<TensorType, std::unique_ptr<RandomBlockPool>> pools_;
};

}  // namespace koto::tools
