#include "koto/quantize_model.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <map>
#include <memory>
#include <system_error>
#include <vector>

#include "base/thread_pool.h"
#include "koto/error.h"
#include "koto/gguf.h"
#include "koto/gguf_writer.h"
#include "koto/i18n.h"
#include "tensor/kernels.h"
#include "tensor/quantize.h"

namespace koto {
namespace {

// Source bytes handled per slab: big enough to keep every thread busy, small enough
// that a slab of floats plus its output stays a few tens of MB.
constexpr int64_t kSlabSourceValues = 4 << 20;

double relative_rms(double error, double source) { return source > 0.0 ? std::sqrt(error / source) : 0.0; }

bool is_float_source(TensorType type) {
  return type == TensorType::kF32 || type == TensorType::kF16 || type == TensorType::kBF16;
}

int model_layer_count(const GgufFile& file) {
  const std::string key = std::string(file.architecture()) + ".block_count";
  if (file.find(key) != nullptr) {
    const uint64_t n = file.get_u64(key, 0);
    if (n > 0 && n < 100000) return static_cast<int>(n);
  }
  int n = 0;
  for (const GgufTensor& t : file.tensors()) n = std::max(n, tensor_layer_index(t.name) + 1);
  return n;
}

// Quantizes rows of one tensor slab by slab, measuring the error.
class TensorQuantizer {
 public:
  TensorQuantizer(const GgufTensor& source, TensorType to, ThreadPool& pool, QuantizedTensor& result)
      : source_(source), to_(to), pool_(pool), result_(result) {}

  void write(GgufDataSink& sink, const std::function<void(uint64_t)>& progress) {
    const int64_t n = source_.row_length();
    const int64_t rows = source_.rows();
    const int64_t source_row_bytes = tensor_row_bytes(source_.type, n);
    const int64_t out_row_bytes = tensor_row_bytes(to_, n);
    const int64_t slab_rows = std::clamp<int64_t>(kSlabSourceValues / n, 1, rows);
    std::vector<uint8_t> out(static_cast<size_t>(slab_rows * out_row_bytes));
    const int64_t n_tasks_max = std::max<int64_t>(1, std::min<int64_t>(slab_rows, pool_.size() * 8));
    std::vector<double> error(static_cast<size_t>(n_tasks_max));
    std::vector<double> energy(static_cast<size_t>(n_tasks_max));

    for (int64_t first = 0; first < rows; first += slab_rows) {
      const int64_t slab = std::min(slab_rows, rows - first);
      const int64_t n_tasks = std::min(n_tasks_max, slab);
      const int64_t rows_per_task = (slab + n_tasks - 1) / n_tasks;
      std::fill(error.begin(), error.end(), 0.0);
      std::fill(energy.begin(), energy.end(), 0.0);
      pool_.parallel_for(n_tasks, [&](int64_t task) {
        thread_local std::vector<float> x;
        thread_local std::vector<float> y;
        x.resize(static_cast<size_t>(n));
        y.resize(static_cast<size_t>(n));
        const int64_t begin = task * rows_per_task;
        const int64_t end = std::min(slab, begin + rows_per_task);
        double e = 0.0;
        double s = 0.0;
        for (int64_t r = begin; r < end; ++r) {
          kernels::dequantize_row(source_.type, source_.data + (first + r) * source_row_bytes, x.data(), n);
          uint8_t* dst = out.data() + r * out_row_bytes;
          quantize_row(to_, x.data(), dst, n);
          kernels::dequantize_row(to_, dst, y.data(), n);
          for (int64_t i = 0; i < n; ++i) {
            const double d = static_cast<double>(x[i]) - y[i];
            e += d * d;
            s += static_cast<double>(x[i]) * x[i];
          }
        }
        error[static_cast<size_t>(task)] = e;
        energy[static_cast<size_t>(task)] = s;
      });
      for (int64_t t = 0; t < n_tasks; ++t) {
        result_.sum_sq_error += error[static_cast<size_t>(t)];
        result_.sum_sq_source += energy[static_cast<size_t>(t)];
      }
      sink.write(out.data(), static_cast<size_t>(slab * out_row_bytes));
      if (progress) progress(static_cast<uint64_t>(slab * source_row_bytes));
    }
  }

 private:
  const GgufTensor& source_;
  TensorType to_;
  ThreadPool& pool_;
  QuantizedTensor& result_;
};

}  // namespace

double QuantizedTensor::relative_rms_error() const { return relative_rms(sum_sq_error, sum_sq_source); }
double QuantizeTypeTotal::relative_rms_error() const { return relative_rms(sum_sq_error, sum_sq_source); }

int QuantizeReport::fallbacks() const {
  return static_cast<int>(std::count_if(tensors.begin(), tensors.end(), [](const QuantizedTensor& t) { return t.to != t.wanted; }));
}

int QuantizeReport::requantized() const {
  return static_cast<int>(std::count_if(tensors.begin(), tensors.end(), [](const QuantizedTensor& t) { return t.requantized; }));
}

std::vector<QuantizeTypeTotal> QuantizeReport::totals_by_type() const {
  std::map<uint32_t, QuantizeTypeTotal> by_type;
  for (const QuantizedTensor& t : tensors) {
    QuantizeTypeTotal& total = by_type[static_cast<uint32_t>(t.to)];
    total.type = t.to;
    total.tensors += 1;
    total.n_elements += t.n_elements;
    total.bytes += t.bytes;
    total.sum_sq_error += t.sum_sq_error;
    total.sum_sq_source += t.sum_sq_source;
  }
  std::vector<QuantizeTypeTotal> totals;
  for (auto& [id, total] : by_type) totals.push_back(total);
  return totals;
}

double QuantizeReport::total_relative_rms_error() const {
  double error = 0.0;
  double source = 0.0;
  for (const QuantizedTensor& t : tensors) {
    if (t.copied) continue;
    error += t.sum_sq_error;
    source += t.sum_sq_source;
  }
  return relative_rms(error, source);
}

QuantizeReport quantize_model(const std::string& input, const std::string& output, const QuantizeOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  const std::optional<QuantMix> mix = find_quant_mix(options.type);
  if (!mix) {
    throw Error(ErrorCode::kInvalidArgument, tr("unknown type \"{0}\" (known: {1})", "不明な型 \"{0}\" です (既知: {1})",
                                                options.type, quant_mix_names()));
  }
  std::error_code ec;
  if (std::filesystem::equivalent(input, output, ec)) {
    throw Error(ErrorCode::kInvalidArgument,
                tr("{0}: the output would replace the input; give another output file",
                   "{0}: 出力が入力を上書きしてしまいます。別の出力ファイルを指定してください", output));
  }
  const GgufFile file = GgufFile::open(input);
  const int n_layer = model_layer_count(file);
  const bool tied = file.find_tensor("output.weight") == nullptr;

  QuantizeReport report;
  report.mix = *mix;
  report.input_bytes = file.file_size();
  ThreadPool pool(options.n_threads);
  report.threads = pool.size();

  GgufWriter writer;
  for (const GgufKeyValue& kv : file.metadata()) writer.set(kv.key, GgufMetaValue::copy_of(kv.value));
  writer.set_u32("general.file_type", mix->file_type);

  uint64_t total_source = 0;
  for (const GgufTensor& t : file.tensors()) total_source += t.n_bytes;
  auto done = std::make_shared<uint64_t>(0);
  auto advance = [done, total_source, &options](uint64_t bytes) {
    *done += bytes;
    if (options.progress) options.progress(*done, total_source);
  };

  bool quantized = false;
  report.tensors.resize(file.tensors().size());
  for (size_t i = 0; i < file.tensors().size(); ++i) {
    const GgufTensor& t = file.tensors()[i];
    QuantizedTensor& r = report.tensors[i];
    r.name = std::string(t.name);
    r.from = t.type;
    r.n_elements = t.n_elements;
    r.row_length = t.row_length();
    const bool decodable = tensor_type_info(t.type).supported;

    if (!decodable) {  // integer tensors and types koto cannot read: as they are
      r.to = r.wanted = t.type;
      r.copied = true;
    } else if (t.shape.size() < 2) {
      r.to = r.wanted = TensorType::kF32;
      r.copied = t.type == TensorType::kF32;
    } else {
      r.wanted = quant_mix_tensor_type(*mix, t.name, t.shape, n_layer, tied);
      r.to = fallback_tensor_type(r.wanted, t.row_length());
      r.copied = r.to == t.type;
      r.requantized = !r.copied && !is_float_source(t.type);
    }
    r.bytes = static_cast<uint64_t>(t.rows() * tensor_row_bytes(r.to, t.row_length()));
    quantized |= tensor_type_info(r.to).block_size > 1;

    if (r.copied) {
      writer.add_tensor(t.name, t.shape, t.type, [&t, advance](GgufDataSink& sink) {
        sink.write(t.data, t.n_bytes);
        advance(t.n_bytes);
      });
    } else {
      writer.add_tensor(t.name, t.shape, r.to, [&t, &r, &pool, advance](GgufDataSink& sink) {
        TensorQuantizer(t, r.to, pool, r).write(sink, advance);
      });
    }
  }
  if (quantized) {
    writer.set_u32("general.quantization_version", 2);
  } else {
    writer.remove("general.quantization_version");
  }
  report.output_bytes = writer.file_size();
  writer.write_file(output);
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return report;
}

}  // namespace koto
