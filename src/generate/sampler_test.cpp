#include "koto/sampler.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <set>
#include <vector>

#include "koto/error.h"

namespace koto {
namespace {

std::vector<float> random_logits(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 3.0f);
  std::vector<float> logits(n);
  for (float& v : logits) v = normal(rng);
  return logits;
}

// Logits whose temperature-1 softmax is exactly `probs`.
std::vector<float> logits_of(std::initializer_list<double> probs) {
  std::vector<float> logits;
  for (double p : probs) logits.push_back(static_cast<float>(std::log(p)));
  return logits;
}

SamplingOptions no_filters(float temperature, uint64_t seed) {
  SamplingOptions o;
  o.temperature = temperature;
  o.top_k = 0;
  o.top_p = 1.0f;
  o.min_p = 0.0f;
  o.seed = seed;
  return o;
}

TEST(Sampler, GreedyPicksTheHighestLogitAndTheLowestIdOnTies) {
  Sampler sampler(no_filters(0.0f, 1));
  EXPECT_EQ(sampler.sample(std::vector<float>{0.1f, 3.0f, -2.0f, 2.9f}), 1);
  EXPECT_EQ(sampler.sample(std::vector<float>{1.0f, 5.0f, 5.0f, 5.0f}), 1);
  EXPECT_EQ(sampler.sample(std::vector<float>{NAN, -1.0f}), 1);
}

TEST(Sampler, TopKOneEqualsGreedy) {
  SamplingOptions options = no_filters(1.5f, 7);
  options.top_k = 1;
  Sampler top1(options);
  Sampler greedy(no_filters(0.0f, 7));
  for (uint64_t row = 0; row < 50; ++row) {
    const std::vector<float> logits = random_logits(1000, row);
    EXPECT_EQ(top1.sample(logits), greedy.sample(logits)) << "row " << row;
  }
}

TEST(Sampler, SameSeedGivesTheSameTokensAndAnotherSeedDiffers) {
  auto draw = [](uint64_t seed) {
    SamplingOptions options;  // defaults: temperature 0.8, top-k 40, top-p 0.95, min-p 0.05
    options.seed = seed;
    Sampler sampler(options);
    std::vector<TokenId> out;
    for (uint64_t row = 0; row < 64; ++row) {
      const TokenId id = sampler.sample(random_logits(5000, row % 4));
      sampler.accept(id);
      out.push_back(id);
    }
    return out;
  };
  EXPECT_EQ(draw(42), draw(42));
  EXPECT_NE(draw(42), draw(43));
}

TEST(Sampler, RandomSeedIsResolvedAndReported) {
  Sampler sampler(SamplingOptions{});
  EXPECT_NE(sampler.seed(), kRandomSeed);
  SamplingOptions again;
  again.seed = sampler.seed();
  Sampler replay(again);
  const std::vector<float> logits = random_logits(100, 3);
  EXPECT_EQ(sampler.sample(logits), replay.sample(logits));
}

TEST(Sampler, DrawsFollowTheDistribution) {
  Sampler sampler(no_filters(1.0f, 123));
  const std::vector<float> logits = logits_of({0.75, 0.25});
  int zeros = 0;
  constexpr int kDraws = 20000;
  for (int i = 0; i < kDraws; ++i) zeros += sampler.sample(logits) == 0;
  EXPECT_NEAR(zeros / double{kDraws}, 0.75, 0.015);
}

TEST(Sampler, TemperatureSharpensAndFlattens) {
  const std::vector<float> logits = logits_of({0.6, 0.4});
  auto share_of_first = [&](float temperature) {
    Sampler sampler(no_filters(temperature, 5));
    int zeros = 0;
    for (int i = 0; i < 10000; ++i) zeros += sampler.sample(logits) == 0;
    return zeros / 10000.0;
  };
  // p0 at temperature T is 0.6^(1/T) / (0.6^(1/T) + 0.4^(1/T)).
  EXPECT_NEAR(share_of_first(0.5f), 0.36 / (0.36 + 0.16), 0.02);
  EXPECT_NEAR(share_of_first(2.0f), std::sqrt(0.6) / (std::sqrt(0.6) + std::sqrt(0.4)), 0.02);
}

TEST(Sampler, TopPKeepsTheSmallestHeadWithTheMass) {
  const std::vector<float> logits = logits_of({0.1, 0.5, 0.15, 0.25});
  SamplingOptions options = no_filters(1.0f, 9);
  options.top_p = 0.7f;  // 0.5 + 0.25 reaches it: tokens 1 and 3
  Sampler sampler(options);
  std::set<TokenId> seen;
  for (int i = 0; i < 2000; ++i) seen.insert(sampler.sample(logits));
  EXPECT_EQ(seen, (std::set<TokenId>{1, 3}));
}

TEST(Sampler, TopPOnALargeFlatVocabularyStillCutsCorrectly) {
  // 150k tokens, all equal except two: the head must grow past several chunks.
  std::vector<float> logits(150000, 0.0f);
  SamplingOptions options = no_filters(1.0f, 11);
  options.top_p = 0.5f;
  Sampler sampler(options);
  std::set<TokenId> seen;
  for (int i = 0; i < 200; ++i) seen.insert(sampler.sample(logits));
  // Ties are ordered by id, so the kept half is exactly ids 0 .. 74999.
  EXPECT_LT(*seen.rbegin(), 75000);
  EXPECT_GT(seen.size(), 190u);
}

TEST(Sampler, MinPDropsTokensBelowTheFractionOfTheTop) {
  const std::vector<float> logits = logits_of({0.5, 0.3, 0.04, 0.16});
  SamplingOptions options = no_filters(1.0f, 13);
  options.min_p = 0.1f;  // threshold 0.05: token 2 (0.04) goes
  Sampler sampler(options);
  std::set<TokenId> seen;
  for (int i = 0; i < 3000; ++i) seen.insert(sampler.sample(logits));
  EXPECT_EQ(seen, (std::set<TokenId>{0, 1, 3}));
}

TEST(Sampler, TopKLimitsTheCandidates) {
  const std::vector<float> logits = random_logits(200, 17);
  SamplingOptions options = no_filters(5.0f, 17);
  options.top_k = 3;
  Sampler sampler(options);
  std::vector<std::pair<float, TokenId>> ranked;
  for (size_t i = 0; i < logits.size(); ++i) ranked.emplace_back(-logits[i], static_cast<TokenId>(i));
  std::sort(ranked.begin(), ranked.end());
  const std::set<TokenId> top3{ranked[0].second, ranked[1].second, ranked[2].second};
  std::set<TokenId> seen;
  for (int i = 0; i < 2000; ++i) seen.insert(sampler.sample(logits));
  EXPECT_EQ(seen, top3);
}

TEST(Sampler, RepeatPenaltyDividesPositiveAndMultipliesNegativeLogits) {
  SamplingOptions options = no_filters(0.0f, 1);
  options.repeat_penalty = 2.0f;
  Sampler sampler(options);
  sampler.accept(0);
  // Token 0: 3.0 -> 1.5, below token 1 (2.0).
  EXPECT_EQ(sampler.sample(std::vector<float>{3.0f, 2.0f}), 1);
  // Token 0: -1.0 -> -2.0, below token 1 (-1.5); without history token 0 would win.
  EXPECT_EQ(sampler.sample(std::vector<float>{-1.0f, -1.5f}), 1);
  // Token 1 is not in the history and keeps its logit.
  EXPECT_EQ(sampler.sample(std::vector<float>{2.5f, 1.3f}), 1);
  EXPECT_EQ(sampler.sample(std::vector<float>{2.5f, 1.2f}), 0);
}

TEST(Sampler, FrequencyAndPresencePenaltiesCountOccurrences) {
  SamplingOptions options = no_filters(0.0f, 1);
  options.frequency_penalty = 0.5f;
  options.presence_penalty = 0.25f;
  Sampler sampler(options);
  sampler.accept(0);
  sampler.accept(0);
  sampler.accept(2);
  // Token 0: 5.0 - 2 * 0.5 - 0.25 = 3.75. Token 2: 4.5 - 0.5 - 0.25 = 3.75, tie -> id 0.
  EXPECT_EQ(sampler.sample(std::vector<float>{5.0f, 3.7f, 4.5f}), 0);
  EXPECT_EQ(sampler.sample(std::vector<float>{5.0f, 3.8f, 4.5f}), 1);
  EXPECT_EQ(sampler.sample(std::vector<float>{5.0f, 3.7f, 4.51f}), 2);
}

TEST(Sampler, PenaltyWindowForgetsOldTokens) {
  SamplingOptions options = no_filters(0.0f, 1);
  options.repeat_penalty = 10.0f;
  options.repeat_last_n = 2;
  Sampler sampler(options);
  sampler.accept(0);
  EXPECT_EQ(sampler.sample(std::vector<float>{2.0f, 1.0f}), 1);
  sampler.accept(1);
  sampler.accept(1);  // token 0 has left the window of 2
  EXPECT_EQ(sampler.sample(std::vector<float>{2.0f, 1.0f}), 0);
  sampler.reset();
  EXPECT_EQ(sampler.sample(std::vector<float>{1.0f, 2.0f}), 1);
}

// An infinite logit is a certain token: after top-k reorders the candidates the sampler
// must still pick it, never just the first candidate left.
TEST(Sampler, PositiveInfinityAfterTopKIsChosen) {
  for (int32_t top_k : {0, 2, 3}) {
    SamplingOptions options = no_filters(1.0f, 3);
    options.top_k = top_k;
    Sampler sampler(options);
    const float inf = std::numeric_limits<float>::infinity();
    for (int draw = 0; draw < 20; ++draw) {
      EXPECT_EQ(sampler.sample(std::vector<float>{1.0f, 2.0f, 0.5f, inf, 1.5f}), 3) << "top_k " << top_k;
    }
  }
}

TEST(Sampler, NegativePenaltiesFavourRepetition) {
  SamplingOptions options = no_filters(0.0f, 1);
  options.frequency_penalty = -0.5f;
  options.presence_penalty = -0.25f;
  Sampler sampler(options);
  sampler.accept(1);
  // Token 1: 2.0 + 0.5 + 0.25 = 2.75 beats token 0's 2.5.
  EXPECT_EQ(sampler.sample(std::vector<float>{2.5f, 2.0f}), 1);
}

TEST(Sampler, RejectsOptionsThatCannotWork) {
  SamplingOptions options;
  options.top_p = 1.5f;
  EXPECT_THROW(Sampler{options}, Error);
  options = {};
  options.repeat_penalty = 0.0f;
  EXPECT_THROW(Sampler{options}, Error);
  options = {};
  options.repeat_last_n = -2;
  EXPECT_THROW(Sampler{options}, Error);
}

// Speculative acceptance with a certain guess leaves the distribution as it is: over
// many draws, each token's frequency matches sample()'s own probabilities (after top-k,
// at temperature 0.7) within 5 standard deviations, whether the guess is likely,
// unlikely or cut by top-k; greedy keeps the guess exactly when it is the best token.
TEST(Sampler, DraftAcceptanceKeepsTheDistribution) {
  const std::vector<float> logits = {2.0f, 1.5f, 0.3f, -0.5f, 1.0f, -3.0f};
  SamplingOptions options;
  options.temperature = 0.7f;
  options.top_k = 5;
  options.top_p = 1.0f;
  options.min_p = 0.0f;
  options.seed = 77;
  // Expected: softmax(logits / 0.7) over the top 5 (id 5 cut).
  std::vector<double> p(logits.size(), 0.0);
  double total = 0.0;
  for (size_t i = 0; i < 5; ++i) {
    p[i] = std::exp(logits[i] / 0.7);
    total += p[i];
  }
  for (double& v : p) v /= total;
  constexpr int kDraws = 60000;
  for (TokenId guess : {0, 3, 5}) {
    Sampler sampler(options);
    std::vector<int> counts(logits.size(), 0);
    int accepted = 0;
    for (int i = 0; i < kDraws; ++i) {
      const Sampler::DraftResult r = sampler.sample_with_draft(logits, guess);
      ++counts[static_cast<size_t>(r.token)];
      accepted += r.accepted;
      EXPECT_EQ(r.accepted, r.token == guess);
    }
    for (size_t t = 0; t < logits.size(); ++t) {
      const double sd = std::sqrt(kDraws * p[t] * (1 - p[t]));
      EXPECT_NEAR(counts[t], kDraws * p[t], 5 * sd + 1) << "guess " << guess << " token " << t;
    }
    if (guess == 5) {
      EXPECT_EQ(accepted, 0);
    }
  }
  SamplingOptions greedy = options;
  greedy.temperature = 0.0f;
  Sampler g(greedy);
  EXPECT_TRUE(g.sample_with_draft(logits, 0).accepted);
  const Sampler::DraftResult miss = g.sample_with_draft(logits, 1);
  EXPECT_FALSE(miss.accepted);
  EXPECT_EQ(miss.token, 0);
}

}  // namespace
}  // namespace koto
