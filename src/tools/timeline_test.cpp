#include "koto/timeline.h"

#include <gtest/gtest.h>
#include <libxml/parser.h>
#include <sys/mman.h>
#include <unistd.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <thread>

#include "koto/i18n.h"

namespace koto {
namespace {

void burn_cpu(std::chrono::milliseconds how_long) {
  const auto end = std::chrono::steady_clock::now() + how_long;
  volatile double x = 1;
  while (std::chrono::steady_clock::now() < end) x = x * 1.0000001 + 1e-9;
}

TEST(Timeline, SamplesCpuMemoryAndTheWatchedMappingWithPhaseMarks) {
  const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  void* map = ::mmap(nullptr, 64 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(map, MAP_FAILED);
  auto* bytes = static_cast<unsigned char*>(map);
  for (size_t i = 0; i < 16; ++i) bytes[i * page] = 1;  // 16 of 64 pages resident

  TimelineRecorder recorder(std::chrono::milliseconds(20));
  recorder.watch_mapping(map, 64 * page);
  recorder.mark("load");
  burn_cpu(std::chrono::milliseconds(150));
  recorder.mark("prompt");
  std::this_thread::sleep_for(std::chrono::milliseconds(60));
  recorder.mark("end");
  recorder.stop();

  const std::vector<TimelineSample> samples = recorder.samples();
  ASSERT_GE(samples.size(), 5u);
  double busiest = 0;
  for (size_t i = 0; i < samples.size(); ++i) {
    if (i > 0) {
      EXPECT_GT(samples[i].t, samples[i - 1].t);
    }
    EXPECT_GT(samples[i].rss_bytes, 0u);
    EXPECT_EQ(samples[i].model_resident_bytes, 16 * page);
    EXPECT_GE(samples[i].machine_cpu_percent, 0.0);
    EXPECT_LE(samples[i].machine_cpu_percent, 100.0);
    busiest = std::max(busiest, samples[i].process_cpu_percent);
  }
  EXPECT_GT(busiest, 50.0);  // one thread spinning is ~100 % of a core
  const std::vector<TimelineMark> marks = recorder.marks();
  ASSERT_EQ(marks.size(), 4u);
  EXPECT_EQ(marks[0].phase, "start");
  EXPECT_EQ(marks[1].phase, "load");
  EXPECT_GE(marks[2].t - marks[1].t, 0.14);

  const nlohmann::json json = nlohmann::json::parse(timeline_json(recorder, {"テスト", 1.5, 0.25, 12.5, 30}));
  EXPECT_EQ(json["samples"].size(), samples.size());
  EXPECT_EQ(json["marks"][2]["phase"], "prompt");
  EXPECT_EQ(json["watched_bytes"], 64 * page);
  EXPECT_EQ(json["headline"]["title"], "テスト");
  ::munmap(map, 64 * page);
}

TEST(Timeline, TheSvgIsWellFormedSelfContainedAndLabelledInTheUsersLanguage) {
  TimelineRecorder recorder(std::chrono::milliseconds(10));
  recorder.mark("load");
  std::this_thread::sleep_for(std::chrono::milliseconds(40));
  recorder.mark("generation");
  recorder.stop();
  const TimelineHeadline headline{"model<&>.gguf", 1.25, 0.5, 20.0, 41.5};
  std::string svg;
  {
    const ScopedLanguage ja(Language::kJapanese);
    svg = timeline_svg(recorder, headline);
  }
  for (const char* want : {"読み込み", "生成", "実行の費用: model&lt;&amp;&gt;.gguf", "読み込み 1.25 秒", "最初のトークンまで 0.50 秒",
                           "毎秒 20.0 トークン", "毎秒 41.5 文字", "ピークメモリ"}) {
    EXPECT_NE(svg.find(want), std::string::npos) << want;
  }
  EXPECT_EQ(svg.find("http://www.w3.org/2000/svg"), svg.find("http"));  // no other address: nothing to fetch
  xmlDocPtr doc = xmlReadMemory(svg.data(), static_cast<int>(svg.size()), "timeline.svg", "UTF-8", XML_PARSE_NONET);
  ASSERT_NE(doc, nullptr) << "not well-formed XML";
  EXPECT_STREQ(reinterpret_cast<const char*>(xmlDocGetRootElement(doc)->name), "svg");
  xmlFreeDoc(doc);
  {
    const ScopedLanguage en(Language::kEnglish);
    svg = timeline_svg(recorder, headline);
  }
  EXPECT_NE(svg.find(">load<"), std::string::npos);
  EXPECT_NE(svg.find("first token 0.50 s"), std::string::npos);
}

}  // namespace
}  // namespace koto
