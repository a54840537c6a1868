#include "koto/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "koto/error.h"
#include "koto/i18n.h"

namespace koto {
namespace {

// Descending by logit; ties by id so the order (and thus the draw) is fully determined.
bool higher(TokenId a_id, float a, TokenId b_id, float b) { return a > b || (a == b && a_id < b_id); }

void check_option(bool ok, const char* name, double value, const char* range_en, const char* range_ja) {
  if (!ok) {
    throw Error(ErrorCode::kInvalidArgument,
                tr("sampling option {0} = {1} is out of range ({2})", "サンプリング設定 {0} = {1} は範囲外です ({2})",
                   name, value, pick(range_en, range_ja)));
  }
}

}  // namespace

Sampler::Sampler(const SamplingOptions& options) : options_(options) {
  check_option(std::isfinite(options.temperature), "temperature", options.temperature, "a finite number",
               "有限の数");
  check_option(options.top_p >= 0.0f && options.top_p <= 1.0f, "top_p", options.top_p, "0 to 1", "0〜1");
  check_option(options.min_p >= 0.0f && options.min_p <= 1.0f, "min_p", options.min_p, "0 to 1", "0〜1");
  check_option(options.repeat_penalty > 0.0f, "repeat_penalty", options.repeat_penalty, "greater than 0",
               "0 より大きい値");
  check_option(options.repeat_last_n >= -1, "repeat_last_n", options.repeat_last_n, "-1 or more", "-1 以上");
  check_option(std::isfinite(options.frequency_penalty), "frequency_penalty", options.frequency_penalty,
               "a finite number", "有限の数");
  check_option(std::isfinite(options.presence_penalty), "presence_penalty", options.presence_penalty,
               "a finite number", "有限の数");
  if (options.seed == kRandomSeed) {
    std::random_device device;
    seed_ = (static_cast<uint64_t>(device()) << 32 | device()) & ~uint64_t{0} >> 1;  // never kRandomSeed
  } else {
    seed_ = options.seed;
  }
  rng_.seed(seed_);
}

void Sampler::reset() {
  history_.clear();
  rng_.seed(seed_);
}

void Sampler::accept(TokenId id) {
  if (options_.repeat_last_n == 0) return;
  history_.push_back(id);
  if (options_.repeat_last_n > 0 && history_.size() > static_cast<size_t>(options_.repeat_last_n)) {
    history_.pop_front();
  }
}

double Sampler::uniform() { return static_cast<double>(rng_() >> 11) * 0x1.0p-53; }

void Sampler::apply_penalties(std::vector<Candidate>& candidates) const {
  const bool any = options_.repeat_penalty != 1.0f || options_.frequency_penalty != 0.0f ||
                   options_.presence_penalty != 0.0f;
  if (!any || history_.empty()) return;
  // The window is small (tens of tokens): count by sorting a copy, no map needed.
  std::vector<TokenId> window(history_.begin(), history_.end());
  std::sort(window.begin(), window.end());
  for (size_t i = 0; i < window.size();) {
    size_t j = i;
    while (j < window.size() && window[j] == window[i]) ++j;
    const TokenId id = window[i];
    const auto count = static_cast<float>(j - i);
    i = j;
    if (id < 0 || static_cast<size_t>(id) >= candidates.size()) continue;
    float& logit = candidates[static_cast<size_t>(id)].logit;
    logit = logit > 0.0f ? logit / options_.repeat_penalty : logit * options_.repeat_penalty;
    logit -= count * options_.frequency_penalty + options_.presence_penalty;
  }
}

size_t Sampler::top_p_cut(float max_logit) {
  // Quickselect on probability mass: halve the undecided range [lo, hi) around its
  // median until it is small, then sort only that piece. O(n) whatever the shape of
  // the distribution (a lazily sorted prefix degrades to a full sort when it is flat).
  auto cmp = [](const Candidate& a, const Candidate& b) { return higher(a.id, a.logit, b.id, b.logit); };
  double total = 0.0;
  for (Candidate& c : candidates_) {
    c.weight = std::exp(c.logit - max_logit);  // once: the halving below only adds
    total += c.weight;
  }
  const double target = static_cast<double>(options_.top_p) * total;
  const auto at = [this](size_t i) { return candidates_.begin() + static_cast<std::ptrdiff_t>(i); };
  size_t lo = 0;
  size_t hi = candidates_.size();
  double mass = 0.0;  // of [0, lo), every one of which outranks [lo, hi)
  while (hi - lo > 64) {
    const size_t mid = lo + (hi - lo) / 2;
    std::nth_element(at(lo), at(mid), at(hi), cmp);
    double upper = 0.0;
    for (size_t i = lo; i <= mid; ++i) upper += candidates_[i].weight;
    if (mass + upper >= target) {
      hi = mid + 1;
    } else {
      mass += upper;
      lo = mid + 1;
    }
  }
  std::sort(at(lo), at(hi), cmp);
  for (size_t i = lo; i < hi; ++i) {
    mass += candidates_[i].weight;
    if (mass >= target) return i + 1;
  }
  return hi;
}

TokenId Sampler::sample(std::span<const float> logits) {
  if (const std::optional<TokenId> certain = weigh(logits)) return *certain;
  const double r = uniform() * weights_total_;
  return draw(r, -1);
}

Sampler::DraftResult Sampler::sample_with_draft(std::span<const float> logits, TokenId draft) {
  if (const std::optional<TokenId> certain = weigh(logits)) return {*certain, *certain == draft};
  // Speculative sampling with a draft that was certain (an n-gram lookup proposes one
  // token, q(draft) = 1): keep it with probability p(draft); otherwise draw from p
  // without it, renormalized. The token's distribution is exactly p.
  double draft_weight = 0.0;
  for (size_t i = 0; i < candidates_.size(); ++i) {
    if (candidates_[i].id == draft) draft_weight = weights_[i];
  }
  if (uniform() * weights_total_ < draft_weight) return {draft, true};
  const double rest = weights_total_ - draft_weight;
  if (rest <= 0.0) return {draft, true};  // rounding: nothing else has weight
  return {draw(uniform() * rest, draft), false};
}

TokenId Sampler::draw(double r, TokenId skip) const {
  double acc = 0.0;
  for (size_t i = 0; i < candidates_.size(); ++i) {
    if (candidates_[i].id == skip) continue;
    acc += weights_[i];
    if (r < acc) return candidates_[i].id;
  }
  // Rounding left r at the very top: the last token with any weight.
  for (size_t i = candidates_.size(); i-- > 0;) {
    if (weights_[i] > 0.0 && candidates_[i].id != skip) return candidates_[i].id;
  }
  return candidates_[0].id;
}

std::optional<TokenId> Sampler::weigh(std::span<const float> logits) {
  if (logits.empty()) {
    throw Error(ErrorCode::kInvalidArgument, tr("cannot sample from empty logits", "空のロジットからは選べません"));
  }
  candidates_.resize(logits.size());
  for (size_t i = 0; i < logits.size(); ++i) {
    const float value = logits[i];
    // NaN would poison every comparison; treat it as impossible.
    candidates_[i] = {static_cast<TokenId>(i), std::isnan(value) ? -std::numeric_limits<float>::infinity() : value, 0.0f};
  }
  apply_penalties(candidates_);

  auto argmax = [this] {
    const Candidate* best = &candidates_[0];
    for (const Candidate& c : candidates_) {
      if (higher(c.id, c.logit, best->id, best->logit)) best = &c;
    }
    return best->id;
  };
  if (options_.temperature <= 0.0f) return argmax();

  // top-k: keep the k best (unordered until something needs the order).
  if (options_.top_k > 0 && static_cast<size_t>(options_.top_k) < candidates_.size()) {
    const auto k = static_cast<size_t>(options_.top_k);
    auto cmp = [](const Candidate& a, const Candidate& b) { return higher(a.id, a.logit, b.id, b.logit); };
    std::nth_element(candidates_.begin(), candidates_.begin() + static_cast<std::ptrdiff_t>(k - 1),
                     candidates_.end(), cmp);
    candidates_.resize(k);
  }

  float max_logit = -std::numeric_limits<float>::infinity();
  for (const Candidate& c : candidates_) max_logit = std::max(max_logit, c.logit);
  // +inf: that token is certain; all -inf: nothing to weigh. Either way no weights can
  // be computed, and after top-k the best is no longer necessarily first.
  if (!std::isfinite(max_logit)) return argmax();

  // top-p on the temperature-1 distribution over the kept set.
  if (options_.top_p < 1.0f) candidates_.resize(std::max<size_t>(top_p_cut(max_logit), 1));

  // min-p: p_i >= min_p * p_max  <=>  logit_i >= max_logit + ln(min_p).
  if (options_.min_p > 0.0f) {
    const float threshold = max_logit + std::log(options_.min_p);
    auto end = std::stable_partition(candidates_.begin(), candidates_.end(),
                                     [threshold](const Candidate& c) { return c.logit >= threshold; });
    const auto kept = static_cast<size_t>(end - candidates_.begin());
    candidates_.resize(std::max<size_t>(kept, 1));  // the top token always passes
  }

  // Temperature, then one draw. The walk follows the candidates' order, which is
  // deterministic (nth_element and partition are deterministic for equal input).
  const double inv_temp = 1.0 / static_cast<double>(options_.temperature);
  std::vector<double>& weights = weights_;
  weights.resize(candidates_.size());
  double total = 0.0;
  for (size_t i = 0; i < candidates_.size(); ++i) {
    weights[i] = std::exp(static_cast<double>(candidates_[i].logit - max_logit) * inv_temp);
    total += weights[i];
  }
  weights_total_ = total;
  return std::nullopt;
}

}  // namespace koto
