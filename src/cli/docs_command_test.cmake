# End-to-end checks of `koto index`, `koto search` and `koto ask`, run by CTest as
# `cmake -DKOTO=... -DFIXTURES=... -DCASE=... -DWORK_DIR=... -P this`. Each case makes a
# small folder of Japanese documents, indexes it with the real binary and checks exit
# codes, stdout and stderr.
cmake_minimum_required(VERSION 3.25)

function(expect message)
  if(NOT (${ARGN}))
    message(FATAL_ERROR "${CASE}: ${message}")
  endif()
endfunction()

set(dir "${WORK_DIR}/docs_${CASE}")
set(db "${dir}/index.db")
file(REMOVE_RECURSE "${dir}")
file(MAKE_DIRECTORY "${dir}/docs/規程")
file(WRITE "${dir}/docs/規程/経費.md" "# 経費精算\n\n経費精算の締め日は毎月二十五日です。領収書の原本を添えて経理部に提出してください。\n\n## 交通費\n\n交通費は実費を精算します。定期券の区間は対象外です。\n")
file(WRITE "${dir}/docs/休暇.txt" "有給休暇\n    有給休暇は三日前までに上司へ申請してください。\n    病気の場合は当日の朝に連絡すれば構いません。\n")
file(WRITE "${dir}/docs/壊れた.txt" "")
# An undecodable "text" file (a binary one renamed): reported and skipped, the run goes on.
file(COPY_FILE "${FIXTURES}/models/stories260K.gguf" "${dir}/docs/バイナリ.txt")

execute_process(COMMAND "${KOTO}" index --db "${db}" "${dir}/docs" OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc)
expect("index: exit code ${rc}, stderr: ${err}" rc EQUAL 0)

if(CASE STREQUAL "index_summary")
  string(FIND "${out}" "indexed 3 file(s) (markdown 1, text 2)" at)
  expect("summary: ${out}" at GREATER -1)
  string(FIND "${out}" "バイナリ.txt" at)
  expect("the unreadable file is not reported: ${out}" at GREATER -1)
  # Again: nothing changed.
  execute_process(COMMAND "${KOTO}" index --db "${db}" --json "${dir}/docs" OUTPUT_VARIABLE out RESULT_VARIABLE rc)
  expect("second run: exit ${rc}" rc EQUAL 0)
  string(JSON indexed GET "${out}" files_indexed)
  string(JSON unchanged GET "${out}" files_unchanged)
  expect("second run indexed ${indexed}, unchanged ${unchanged}: ${out}" indexed EQUAL 0 AND unchanged EQUAL 3)

elseif(CASE STREQUAL "search_json")
  execute_process(COMMAND "${KOTO}" search --db "${db}" --json -k 2 "経費精算の締め日はいつ？"
                  OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc)
  expect("search: exit code ${rc}, stderr: ${err}" rc EQUAL 0)
  string(JSON path GET "${out}" 0 path)
  string(JSON heading GET "${out}" 0 heading)
  string(JSON line_start GET "${out}" 0 line_start)
  string(JSON text GET "${out}" 0 text)
  expect("first hit path ${path}: ${out}" path STREQUAL "規程/経費.md")
  expect("first hit heading ${heading}" heading STREQUAL "経費精算")
  expect("first hit line ${line_start}" line_start EQUAL 3)
  string(FIND "${text}" "毎月二十五日" at)
  expect("first hit text: ${text}" at GREATER -1)

elseif(CASE STREQUAL "ask_refuses_before_loading")
  # Nothing in the documents: the fixed sentence, and the model (a missing file here)
  # is never loaded.
  execute_process(COMMAND "${KOTO}" ask --db "${db}" -m "${dir}/no-such-model.gguf" "社員旅行の行き先はどこですか？"
                  OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc)
  expect("ask: exit code ${rc}, stderr: ${err}" rc EQUAL 0)
  expect("stdout [${out}]" out STREQUAL "資料には記載がありません。\n")
  string(FIND "${err}" "model was not asked" at)
  expect("stderr does not say why: ${err}" at GREATER -1)

elseif(CASE STREQUAL "ask_with_model")
  # The tiny fixture model writes nonsense; what is checked is the prompt it was given
  # and the sources listed after the answer.
  execute_process(COMMAND "${KOTO}" ask --db "${db}" -m "${FIXTURES}/models/stories260K.gguf" -k 2 -n 4 -c 4096
                          --show-context "交通費の精算で定期券の区間はどうなりますか？"
                  OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc)
  expect("ask: exit code ${rc}, stderr: ${err}" rc EQUAL 0)
  string(FIND "${err}" "[1] 規程/経費.md line 7 (経費精算 > 交通費)\n交通費は実費を精算します。定期券の区間は対象外です。" at)
  expect("the first passage given is not the fare rule: ${err}" at GREATER -1)
  string(FIND "${out}" "it was given these:\n  [1] 規程/経費.md line 7 (経費精算 > 交通費)" at)
  expect("the sources are not listed: ${out}" at GREATER -1)

elseif(CASE STREQUAL "embed_json")
  # The qwen3 reference model has no pooling metadata: mean pooling, 256 dimensions.
  execute_process(COMMAND "${KOTO}" embed -m "${FIXTURES}/arch/qwen3-F32.gguf" --json "経費精算の締め日"
                  OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc)
  expect("embed: exit code ${rc}, stderr: ${err}" rc EQUAL 0)
  string(JSON pooling GET "${out}" pooling)
  string(JSON dims GET "${out}" dimensions)
  string(JSON n LENGTH "${out}" embedding)
  expect("pooling ${pooling}" pooling STREQUAL "mean")
  expect("dimensions ${dims}, length ${n}" dims EQUAL 256 AND n EQUAL 256)

else()
  message(FATAL_ERROR "unknown case ${CASE}")
endif()
