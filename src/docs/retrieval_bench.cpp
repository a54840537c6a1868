#include "koto/retrieval_bench.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>

#include "docs/terms.h"
#include "koto/error.h"
#include "koto/i18n.h"

namespace koto {
namespace {

namespace fs = std::filesystem;

struct Question {
  std::string id;
  std::string text;
  bool answerable = false;
  std::vector<std::string> answer_files;
  std::string evidence;  // normalised, without white space
};

// Evidence and passages compared as search sees text, and without white space (PDF
// and wrapped text break lines anywhere).
std::string squash(std::string_view text) {
  std::string out;
  for (char c : docs::normalize_for_search(text)) {
    if (c != ' ' && c != '\n' && c != '\t' && c != '\r') out += c;
  }
  return out;
}

std::vector<Question> read_questions(const fs::path& path) {
  std::ifstream in(path);
  if (!in) throw Error(ErrorCode::kNotFound, tr("{0}: cannot open the question set", "{0}: 質問集を開けません", path.string()));
  std::vector<Question> questions;
  int line_number = 0;
  for (std::string line; std::getline(in, line);) {
    ++line_number;
    if (line.empty()) continue;
    try {
      const nlohmann::json j = nlohmann::json::parse(line);
      Question q;
      q.id = j.at("id").get<std::string>();
      q.text = j.at("question").get<std::string>();
      q.answerable = j.at("answerable").get<bool>();
      for (const auto& f : j.value("answer_files", nlohmann::json::array())) q.answer_files.push_back(f.get<std::string>());
      q.evidence = squash(j.value("evidence", std::string()));
      questions.push_back(std::move(q));
    } catch (const nlohmann::json::exception& e) {
      throw Error(ErrorCode::kCorruptFile, tr("{0}:{1}: not a question line ({2})", "{0}:{1}: 質問の行ではありません ({2})",
                                              path.string(), line_number, e.what()));
    }
  }
  return questions;
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t i = std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5));
  return v[i];
}

}  // namespace

RetrievalBenchResult run_retrieval_bench(const RetrievalBenchOptions& options) {
  auto note = [&](const std::string& s) {
    if (options.progress) options.progress(s);
  };
  const std::vector<Question> questions = read_questions(options.questions);
  const bool temporary = options.db.empty();
  const fs::path db = temporary ? fs::temp_directory_path() / ("koto-retrieval-" + std::to_string(::getpid()) + ".db") : options.db;
  for (const char* suffix : {"", "-wal", "-shm"}) fs::remove(db.string() + suffix);

  RetrievalBenchResult result;
  {
    DocIndex index(db, true);
    note(tr("indexing {0}", "{0} を索引中", options.corpus.string()));
    const IndexReport report = index.index({options.corpus}, options.index);
    result.index_seconds = report.seconds;
    result.files = report.files_indexed;
    result.chunks = report.chunks_total;
  }
  // One passage per rank is enough: a hit is a passage from an answer file.
  DocIndex index(db, false);
  result.threshold = options.refuse_below >= 0 ? options.refuse_below : DocIndex::kDefaultMinCoverage;
  note(tr("asking {0} questions", "{0} 問を検索中", questions.size()));
  std::vector<double> query_ms;
  double reciprocal_sum = 0;
  int found_in_5 = 0;
  for (const Question& q : questions) {
    const auto start = std::chrono::steady_clock::now();
    const SearchResult r = index.search(q.text, 10);
    query_ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
    RetrievalQuestion out;
    out.id = q.id;
    out.answerable = q.answerable;
    out.coverage = r.coverage;
    out.refused = r.hits.empty() || r.coverage < result.threshold;
    for (size_t i = 0; i < r.hits.size(); ++i) {
      const bool evidence = !q.evidence.empty() && squash(r.hits[i].text).find(q.evidence) != std::string::npos;
      if (evidence && out.evidence_rank == 0) out.evidence_rank = static_cast<int>(i + 1);
      const bool right_file = q.answer_files.empty()
                                  ? evidence
                                  : std::find(q.answer_files.begin(), q.answer_files.end(), r.hits[i].path) != q.answer_files.end();
      if (right_file && out.first_correct_rank == 0) out.first_correct_rank = static_cast<int>(i + 1);
    }
    if (q.answerable && !q.evidence.empty()) {
      ++result.with_evidence;
      if (out.evidence_rank > 0 && out.evidence_rank <= 5) result.evidence_recall_at_5 += 1;
      if (out.evidence_rank > 0) result.evidence_mrr_at_10 += 1.0 / out.evidence_rank;
    }
    if (q.answerable) {
      ++result.answerable;
      if (out.first_correct_rank > 0 && out.first_correct_rank <= 5) ++found_in_5;
      if (out.first_correct_rank > 0) reciprocal_sum += 1.0 / out.first_correct_rank;
      if (out.refused) result.refused_answerable += 1;
    } else {
      ++result.unanswerable;
      if (out.refused) result.refused_unanswerable += 1;
    }
    result.questions.push_back(out);
  }
  if (result.answerable > 0) {
    result.recall_at_5 = static_cast<double>(found_in_5) / result.answerable;
    result.mrr_at_10 = reciprocal_sum / result.answerable;
    result.refused_answerable /= result.answerable;
  }
  if (result.unanswerable > 0) result.refused_unanswerable /= result.unanswerable;
  if (result.with_evidence > 0) {
    result.evidence_recall_at_5 /= result.with_evidence;
    result.evidence_mrr_at_10 /= result.with_evidence;
  }
  for (int t = 20; t <= 90; t += 5) {
    const double threshold = t / 100.0;
    double yes = 0;
    double wrong = 0;
    for (const RetrievalQuestion& q : result.questions) {
      if (q.coverage >= threshold) continue;
      (q.answerable ? wrong : yes) += 1;
    }
    result.sweep.push_back({threshold, result.unanswerable > 0 ? yes / result.unanswerable : 0,
                            result.answerable > 0 ? wrong / result.answerable : 0});
  }
  result.query_ms_median = percentile(query_ms, 0.5);
  result.query_ms_p90 = percentile(query_ms, 0.9);
  std::error_code ec;
  result.db_bytes = fs::file_size(db, ec);
  if (temporary) {
    for (const char* suffix : {"", "-wal", "-shm"}) fs::remove(db.string() + suffix, ec);
  }
  return result;
}

}  // namespace koto
