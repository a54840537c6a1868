#include "generate/ngram_draft.h"

#include <gtest/gtest.h>

namespace koto {
namespace {

TEST(NgramDraft, ProposesWhatFollowedTheLastThreeTokens) {
  NgramDraft d;
  d.push(std::vector<TokenId>{1, 2, 3, 4, 5, 6, 9, 9, 1, 2, 3});
  EXPECT_EQ(d.propose(3), (std::vector<TokenId>{4, 5, 6}));
  EXPECT_EQ(d.propose(10), (std::vector<TokenId>{4, 5, 6, 9, 9, 1, 2, 3}));  // never past the end
  EXPECT_TRUE(d.propose(0).empty());
}

TEST(NgramDraft, FallsBackToTwoTokensAndPrefersTheLatestOccurrence) {
  NgramDraft d;
  d.push(std::vector<TokenId>{7, 2, 3, 10, 8, 2, 3, 11, 5, 2, 3});
  // 5 2 3 never occurred before; 2 3 did, last followed by 11.
  EXPECT_EQ(d.propose(2), (std::vector<TokenId>{11, 5}));
  NgramDraft none;
  none.push(std::vector<TokenId>{1, 2, 3, 4, 5});
  EXPECT_TRUE(none.propose(4).empty());
  NgramDraft short_text;
  short_text.push(7);
  EXPECT_TRUE(short_text.propose(4).empty());
}

TEST(NgramDraft, LargeIdsDoNotCollide) {
  NgramDraft d;
  // Ids that would collide if the key dropped bits.
  d.push(std::vector<TokenId>{(1 << 20) + 1, 5, 6, 42, 1, 5, 6});
  EXPECT_EQ(d.propose(1), (std::vector<TokenId>{42}));
  NgramDraft e;
  e.push(std::vector<TokenId>{200000, 151000, 99, 1, 200000, 151000});
  EXPECT_EQ(e.propose(2), (std::vector<TokenId>{99, 1}));
}

TEST(NgramDraft, GuessesShrinkAfterMissesPauseAndGrowAgain) {
  NgramDraft d(6);
  for (int i = 0; i < 4; ++i) d.push(std::vector<TokenId>{1, 2, 3, 4, 5, 6, 7, 8});
  d.push(std::vector<TokenId>{1, 2, 3});
  EXPECT_EQ(d.guess(100).size(), 6u);
  EXPECT_EQ(d.guess(2).size(), 2u);  // room first
  d.record(6, 2);                    // missed at the third: next guesses hold 3
  EXPECT_EQ(d.guess(100).size(), 3u);
  d.record(3, 0);  // missed at the first: one step without guessing, then guesses of 1
  EXPECT_TRUE(d.guess(100).empty());
  EXPECT_EQ(d.guess(100).size(), 1u);
  d.record(1, 0);  // again: two steps without
  EXPECT_TRUE(d.guess(100).empty());
  EXPECT_TRUE(d.guess(100).empty());
  EXPECT_EQ(d.guess(100).size(), 1u);
  d.record(1, 1);  // kept: grows by 2
  EXPECT_EQ(d.guess(100).size(), 3u);
  d.record(3, 3);
  d.record(5, 5);
  EXPECT_EQ(d.guess(100).size(), 6u);  // never past its maximum
}

}  // namespace
}  // namespace koto
