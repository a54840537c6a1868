#include "koto/text_stream.h"

#include <gtest/gtest.h>

#include "base/utf8.h"
#include "fake_tokenizer.h"
#include "koto/gguf.h"
#include "test_support.h"

namespace koto {
namespace {

using testing::FakeTokenizer;

// Streams every byte of `text` as its own token; returns the chunks.
std::vector<std::string> stream_bytes(TextStream& stream, std::string_view text) {
  std::vector<std::string> chunks;
  for (unsigned char c : text) chunks.push_back(stream.push(c));
  chunks.push_back(stream.finish());
  return chunks;
}

std::string join(const std::vector<std::string>& chunks) {
  std::string out;
  for (const std::string& c : chunks) out += c;
  return out;
}

TEST(TextStream, HoldsBytesBackUntilTheCharacterIsComplete) {
  FakeTokenizer tokenizer;
  TextStream stream(tokenizer);
  const std::string text = "今日は𠮷";
  const std::vector<std::string> chunks = stream_bytes(stream, text);
  for (const std::string& chunk : chunks) EXPECT_TRUE(utf8::is_valid(chunk)) << chunk;
  EXPECT_EQ(join(chunks), text);
  EXPECT_EQ(chunks[0], "");
  EXPECT_EQ(chunks[1], "");
  EXPECT_EQ(chunks[2], "今");
  EXPECT_EQ(stream.text(), text);
}

TEST(TextStream, AnIncompleteTailBecomesAReplacementCharacter) {
  FakeTokenizer tokenizer;
  TextStream stream(tokenizer);
  EXPECT_EQ(stream.push('a'), "a");
  EXPECT_EQ(stream.push(0xE5), "");  // first byte of 天 (E5 A4 A9)
  EXPECT_EQ(stream.push(0xA4), "");
  EXPECT_EQ(stream.finish(), "\xEF\xBF\xBD");
  EXPECT_EQ(stream.text(), "a\xEF\xBF\xBD");
  EXPECT_EQ(stream.push('b'), "");  // finished
}

TEST(TextStream, BytesThatCanNeverFormACharacterAreReplaced) {
  FakeTokenizer tokenizer;
  TextStream stream(tokenizer);
  std::string out = stream.push(0xE5);
  out += stream.push('x');  // breaks the sequence
  out += stream.push(0xFF);
  out += stream.finish();
  EXPECT_EQ(out, "\xEF\xBF\xBDx\xEF\xBF\xBD");
  EXPECT_TRUE(utf8::is_valid(out));
}

TEST(TextStream, ControlTokensGiveNoText) {
  FakeTokenizer tokenizer({"ok"});
  TextStream stream(tokenizer);
  EXPECT_EQ(stream.push(FakeTokenizer::kControl), "");
  EXPECT_EQ(stream.push(FakeTokenizer::kFirstWord), "ok");
}

TEST(TextStream, DropsTheDummyPrefixSpaceOnlyAtTheStart) {
  FakeTokenizer tokenizer({" Once", " upon"}, /*strips_leading_space=*/true);
  TextStream stream(tokenizer);
  EXPECT_EQ(stream.push(FakeTokenizer::kBos), "");
  EXPECT_EQ(stream.push(FakeTokenizer::kFirstWord), "Once");
  EXPECT_EQ(stream.push(FakeTokenizer::kFirstWord + 1), " upon");
  FakeTokenizer keeps({" Once"}, /*strips_leading_space=*/false);
  TextStream plain(keeps);
  EXPECT_EQ(plain.push(FakeTokenizer::kFirstWord), " Once");
}

TEST(TextStream, LeadingSpaceOptionKeepsOrStripsTheFirstSpace) {
  FakeTokenizer spm({" girl", " named"}, /*strips_leading_space=*/true);
  // Continuing "there was a little": the space belongs to the text.
  TextStream keep(spm, {}, LeadingSpace::kKeep);
  EXPECT_EQ(keep.push(FakeTokenizer::kFirstWord), " girl");
  EXPECT_EQ(keep.push(FakeTokenizer::kFirstWord + 1), " named");
  EXPECT_EQ(keep.text(), " girl named");
  // After chat markup the space is noise, whatever the tokenizer does.
  FakeTokenizer bpe({" はい", " 元気"}, /*strips_leading_space=*/false);
  TextStream strip(bpe, {}, LeadingSpace::kStrip);
  EXPECT_EQ(strip.push(FakeTokenizer::kFirstWord), "はい");
  EXPECT_EQ(strip.push(FakeTokenizer::kFirstWord + 1), " 元気");
  TextStream like_decode(bpe, {}, LeadingSpace::kLikeDecode);
  EXPECT_EQ(like_decode.push(FakeTokenizer::kFirstWord), " はい");
}

TEST(TextStream, StopStringSpanningTokensIsNeverPrinted) {
  FakeTokenizer tokenizer({"Hello", " wor", "ld", "\nUs", "er:", " more"});
  TextStream stream(tokenizer, {"\nUser:"});
  std::string out;
  for (TokenId i = 0; i < 6; ++i) {
    const std::string chunk = stream.push(FakeTokenizer::kFirstWord + i);
    EXPECT_EQ(chunk.find('\n'), std::string::npos) << "a stop prefix leaked: " << chunk;
    out += chunk;
  }
  out += stream.finish();
  EXPECT_EQ(out, "Hello world");
  EXPECT_TRUE(stream.stopped());
  EXPECT_EQ(stream.stop_string(), "\nUser:");
}

TEST(TextStream, AHeldPrefixIsReleasedWhenItTurnsOutNotToBeAStop) {
  FakeTokenizer tokenizer({"a\nUs", "ual", "\nU"});
  TextStream stream(tokenizer, {"\nUser:"});
  EXPECT_EQ(stream.push(FakeTokenizer::kFirstWord), "a");
  EXPECT_EQ(stream.push(FakeTokenizer::kFirstWord + 1), "\nUsual");
  EXPECT_EQ(stream.push(FakeTokenizer::kFirstWord + 2), "");
  EXPECT_EQ(stream.finish(), "\nU");  // the stream ended: a partial stop is just text
  EXPECT_FALSE(stream.stopped());
}

TEST(TextStream, JapaneseStopStringArrivingByteByByte) {
  FakeTokenizer tokenizer;
  TextStream stream(tokenizer, {"。以上"});
  const std::vector<std::string> chunks = stream_bytes(stream, "天気です。以上、終わり");
  for (const std::string& chunk : chunks) EXPECT_TRUE(utf8::is_valid(chunk));
  EXPECT_EQ(join(chunks), "天気です");
  EXPECT_TRUE(stream.stopped());
}

TEST(TextStream, TheEarliestOfSeveralStopStringsWins) {
  FakeTokenizer tokenizer({"x</s>y<|end|>"});
  TextStream stream(tokenizer, {"<|end|>", "</s>", ""});
  EXPECT_EQ(stream.push(FakeTokenizer::kFirstWord), "x");
  EXPECT_EQ(stream.stop_string(), "</s>");
}

// The real Llama-2 vocabulary: Japanese outside the vocabulary arrives as byte tokens.
void expect_streams_back(const char* fixture, const std::string& text) {
  const GgufFile file = GgufFile::open(fixture_path(fixture));
  const std::unique_ptr<Tokenizer> tokenizer = Tokenizer::from_gguf(file);
  const std::vector<TokenId> ids = tokenizer->encode(text, false, false);
  size_t partial_tokens = 0;
  for (TokenId id : ids) partial_tokens += !utf8::is_valid(tokenizer->token_bytes(id));
  EXPECT_GT(partial_tokens, 0u) << fixture << ": the case should split characters over tokens";
  TextStream stream(*tokenizer);
  std::string out;
  for (TokenId id : ids) {
    const std::string chunk = stream.push(id);
    EXPECT_TRUE(utf8::is_valid(chunk)) << fixture << ": invalid chunk after id " << id;
    out += chunk;
  }
  out += stream.finish();
  EXPECT_EQ(out, text) << fixture;
}

TEST(TextStream, JapaneseThroughLlama2ByteFallback) {
  expect_streams_back("tokenizer/llama2-spm.gguf", "今日は良い天気です。𠮷野家");
}

TEST(TextStream, JapaneseThroughQwenByteLevelBpe) {
  // Common kanji are whole tokens in Qwen's vocabulary; rare ones and new emoji are split.
  expect_streams_back("tokenizer/qwen2-bpe.gguf", "今日は良い天気です。𠮷野家の龘と𠀋 🫠");
}

}  // namespace
}  // namespace koto
