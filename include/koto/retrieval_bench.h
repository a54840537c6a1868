// The retrieval benchmark behind `koto bench --retrieval`: indexes a corpus into a fresh
// index (timed), then asks a question set (JSON lines: id, question, answerable,
// answer_files, evidence) and measures recall@5 and MRR@10 over the answerable questions
// (a hit is a passage from one of the question's answer_files; for questions with no
// answer_files, a passage that contains the evidence), the refusal decision at a
// coverage threshold (unanswerable questions refused, answerable ones wrongly refused),
// and the time of one query inside the process.
#pragma once

#include <array>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "koto/doc_index.h"

namespace koto {

struct RetrievalBenchOptions {
  std::filesystem::path corpus;     // folder to index
  std::filesystem::path questions;  // JSON lines
  std::filesystem::path db;         // index file to (re)create; "" = a temporary one
  IndexOptions index;
  double refuse_below = -1;         // coverage threshold; < 0 = DocIndex's default
  std::function<void(const std::string&)> progress;
};

struct RetrievalQuestion {
  std::string id;
  bool answerable = false;
  int first_correct_rank = 0;  // 1-based rank of the first passage from an answer file; 0 = not in the top 10
  int evidence_rank = 0;       // 1-based rank of the first passage containing the evidence; 0 = none in the top 10
  double coverage = 0;
  bool refused = false;
};

struct RetrievalBenchResult {
  int64_t files = 0;
  int64_t chunks = 0;
  double index_seconds = 0;
  uint64_t db_bytes = 0;
  int answerable = 0;
  int unanswerable = 0;
  double recall_at_5 = 0;
  double mrr_at_10 = 0;
  // Passage level: the share of answerable questions whose evidence sentence is in a
  // top-5 passage (what a grounded answer needs), and its MRR@10.
  int with_evidence = 0;
  double evidence_recall_at_5 = 0;
  double evidence_mrr_at_10 = 0;
  double threshold = 0;
  double refused_unanswerable = 0;  // share of unanswerable questions refused
  double refused_answerable = 0;    // share of answerable questions wrongly refused
  double query_ms_median = 0;
  double query_ms_p90 = 0;
  std::vector<RetrievalQuestion> questions;
  // (threshold, refused unanswerable, refused answerable) over a range, for calibration.
  std::vector<std::array<double, 3>> sweep;
};

RetrievalBenchResult run_retrieval_bench(const RetrievalBenchOptions& options);

}  // namespace koto
