#include "koto/grounded_answer.h"

#include <fmt/format.h>

#include <algorithm>

#include "koto/i18n.h"

namespace koto {
namespace {

// The instruction is Japanese whatever the user's locale: the documents and questions
// are, and the fixed refusal sentence must come out exactly.
constexpr std::string_view kInstruction =
    "あなたは資料に基づいて質問に答えるアシスタントです。次の規則を必ず守ってください。\n"
    "1. 答えは、ユーザーが示す番号付きの資料に書かれていることだけから作ってください。資料にないことを推測したり、"
    "一般知識で補ったりしてはいけません。\n"
    "2. 答えの根拠にした資料の番号を、文の終わりに [1] のように付けてください。複数なら [1][3] のようにします。\n"
    "3. 資料に答えが書かれていない場合は、ほかに何も書かず「資料には記載がありません。」とだけ答えてください。\n"
    "4. 日本語で、簡潔に答えてください。";

// Full-width digits and brackets as ASCII, so [１] reads as [1].
std::string ascii_digits_and_brackets(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c == 0xEF && i + 2 < s.size()) {
      const auto c1 = static_cast<unsigned char>(s[i + 1]);
      const auto c2 = static_cast<unsigned char>(s[i + 2]);
      // U+FF10..U+FF19 = EF BC 90..99; U+FF3B [ = EF BC BB; U+FF3D ] = EF BC BD; U+FF0C , = EF BC 8C
      if (c1 == 0xBC && c2 >= 0x90 && c2 <= 0x99) {
        out += static_cast<char>('0' + (c2 - 0x90));
        i += 3;
        continue;
      }
      if (c1 == 0xBC && (c2 == 0xBB || c2 == 0xBD || c2 == 0x8C)) {
        out += c2 == 0xBB ? '[' : c2 == 0xBD ? ']' : ',';
        i += 3;
        continue;
      }
    }
    if (c == 0xE3 && i + 2 < s.size() && static_cast<unsigned char>(s[i + 1]) == 0x80 &&
        static_cast<unsigned char>(s[i + 2]) == 0x81) {  // 、 inside [1、2]
      out += ',';
      i += 3;
      continue;
    }
    out += s[i];
    ++i;
  }
  return out;
}

}  // namespace

std::string passage_source(const SearchHit& hit) {
  std::string where;
  if (hit.page > 0) {
    where = tr("{0} page {1}", "{0} {1} ページ", hit.path, hit.page);
  } else if (hit.line_start == hit.line_end) {
    where = tr("{0} line {1}", "{0} {1} 行目", hit.path, hit.line_start);
  } else {
    where = tr("{0} lines {1}–{2}", "{0} {1}–{2} 行目", hit.path, hit.line_start, hit.line_end);
  }
  if (!hit.heading.empty()) where += tr(" ({0})", " 「{0}」", hit.heading);
  return where;
}

GroundedPrompt build_grounded_prompt(std::string_view question, std::span<const SearchHit> passages) {
  GroundedPrompt prompt;
  prompt.system = std::string(kInstruction);
  std::string user = "資料:\n";
  for (size_t i = 0; i < passages.size(); ++i) {
    const SearchHit& hit = passages[i];
    // Sources in the prompt are always Japanese-style, like the instruction.
    std::string source = hit.path;
    if (hit.page > 0) {
      source += fmt::format(" {} ページ", hit.page);
    } else {
      source += fmt::format(" {}–{} 行目", hit.line_start, hit.line_end);
    }
    if (!hit.heading.empty()) source += fmt::format(" 「{}」", hit.heading);
    user += fmt::format("[{}] 出典: {}\n{}\n\n", i + 1, source, hit.text);
  }
  user += fmt::format("質問: {}\n\n資料だけに基づいて答え、根拠の資料番号を [1] のように示してください。"
                      "資料に答えがなければ「{}」とだけ答えてください。",
                      question, kNotInDocuments);
  prompt.user = std::move(user);
  return prompt;
}

std::vector<int> cited_passages(std::string_view answer, int n_passages) {
  const std::string text = ascii_digits_and_brackets(answer);
  std::vector<int> cited;
  auto add = [&](int n) {
    if (n >= 1 && n <= n_passages && std::find(cited.begin(), cited.end(), n) == cited.end()) cited.push_back(n);
  };
  for (size_t open = text.find('['); open != std::string::npos; open = text.find('[', open + 1)) {
    const size_t close = text.find(']', open + 1);
    if (close == std::string::npos || close - open > 40) continue;
    // Inside: numbers separated by commas/spaces, or a range a-b.
    const std::string inside = text.substr(open + 1, close - open - 1);
    std::vector<int> numbers;
    std::vector<char> separators;
    bool valid = !inside.empty();
    for (size_t i = 0; i < inside.size() && valid;) {
      if (inside[i] >= '0' && inside[i] <= '9') {
        int n = 0;
        size_t digits = 0;
        while (i < inside.size() && inside[i] >= '0' && inside[i] <= '9' && digits < 4) {
          n = n * 10 + (inside[i] - '0');
          ++i;
          ++digits;
        }
        numbers.push_back(n);
      } else if (inside[i] == ',' || inside[i] == ' ' || inside[i] == '-') {
        if (inside[i] != ' ') separators.push_back(inside[i]);
        ++i;
      } else {
        valid = false;
      }
    }
    if (!valid || numbers.empty()) continue;
    if (numbers.size() == 2 && separators.size() == 1 && separators[0] == '-' && numbers[0] <= numbers[1] &&
        numbers[1] - numbers[0] < 20) {
      for (int n = numbers[0]; n <= numbers[1]; ++n) add(n);
    } else {
      for (int n : numbers) add(n);
    }
  }
  return cited;
}

bool says_not_in_documents(std::string_view answer) {
  const size_t b = answer.find_first_not_of(" \t\r\n");
  if (b == std::string_view::npos) return false;
  const size_t e = answer.find_last_not_of(" \t\r\n");
  std::string_view core = answer.substr(b, e - b + 1);
  constexpr std::string_view kStop = "。";
  if (core.size() >= kStop.size() && core.substr(core.size() - kStop.size()) == kStop) core.remove_suffix(kStop.size());
  std::string_view fixed = kNotInDocuments;
  fixed.remove_suffix(kStop.size());
  return core == fixed;
}

bool should_refuse(const SearchResult& result, double min_coverage) {
  return result.hits.empty() || result.coverage < min_coverage;
}

}  // namespace koto
