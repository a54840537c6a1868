# End-to-end checks of `koto chat` with stdin not a terminal (one message per line,
# answers on stdout, costs on stderr), on the chain model whose answer is known
# (src/testing/chain_model.h: 「の大日生語長」 repeated). Run by CTest as
# `cmake -DKOTO=... -DMODELS_DIR=... -DCASE=... -DWORK_DIR=... -P this`.
cmake_minimum_required(VERSION 3.25)

function(expect message)
  if(NOT (${ARGN}))
    message(FATAL_ERROR "${CASE}: ${message}")
  endif()
endfunction()

set(model "${MODELS_DIR}/chain.gguf")
set(dir "${WORK_DIR}/chat_${CASE}")
file(REMOVE_RECURSE "${dir}")
file(MAKE_DIRECTORY "${dir}")

if(CASE STREQUAL "turns_reuse_the_conversation")
  file(WRITE "${dir}/in.txt" "こんにちは\n次の質問です\n\"\"\"\n一行目\n二行目\n\"\"\"\n/save ${dir}/saved.json\n/exit\nこれは読まれない\n")
  execute_process(COMMAND "${KOTO}" chat -m "${model}" -n 6 --temp 0 -c 2048 --no-history --timeline "${dir}/chat.svg"
                  INPUT_FILE "${dir}/in.txt" OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc)
  expect("exit code ${rc}, stderr: ${err}" rc EQUAL 0)
  expect("stdout [${out}]" out STREQUAL "の大\nの大\nの大\n")
  # First turn: nothing to reuse; the next ones reuse the conversation so far.
  string(REGEX MATCHALL "prompt ([0-9]+) reused \\+ ([0-9]+) new tokens" costs "${err}")
  list(LENGTH costs n)
  expect("three cost lines in: ${err}" n EQUAL 3)
  list(GET costs 0 first)
  list(GET costs 1 second)
  expect("first turn reused something: ${first}" first MATCHES "^prompt 0 reused")
  string(REGEX REPLACE "prompt ([0-9]+) reused.*" "\\1" reused "${second}")
  expect("second turn reused ${reused} tokens" reused GREATER 100)
  file(READ "${dir}/saved.json" saved)
  string(JSON n_messages LENGTH "${saved}" messages)
  string(JSON third GET "${saved}" messages 4 content)
  expect("saved ${n_messages} messages" n_messages EQUAL 6)
  expect("the multi-line message: [${third}]" third STREQUAL "一行目\n二行目")
  # The timeline of the session: load, then per turn prompt / first token / generation / idle.
  file(READ "${dir}/chat.svg.json" timeline)
  string(JSON n_marks LENGTH "${timeline}" marks)
  expect("${n_marks} marks (want start, load, idle, 3 x 4, end)" n_marks EQUAL 16)
  string(JSON phase GET "${timeline}" marks 3 phase)
  expect("the first turn begins with ${phase}" phase STREQUAL "prompt")
  file(READ "${dir}/chat.svg" picture)
  string(FIND "${picture}" "</svg>" end_at)
  expect("the picture is not complete" end_at GREATER 0)

elseif(CASE STREQUAL "commands_in_japanese")
  file(WRITE "${dir}/saved.json" "{\"system\": \"短く\", \"messages\": [{\"role\": \"user\", \"content\": \"前の質問\"}, {\"role\": \"assistant\", \"content\": \"前の答え\"}]}")
  file(WRITE "${dir}/in.txt" "/stats\n/load ${dir}/saved.json\n/unknown\n/clear\n/help\n")
  execute_process(COMMAND "${KOTO}" chat -m "${model}" --no-history
                  INPUT_FILE "${dir}/in.txt" OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc)
  expect("exit code ${rc}, stderr: ${err}" rc EQUAL 0)
  foreach(want "まだ回答がありません" "メッセージ 2 件" "/unknown というコマンドはありません" "会話を消去しました" "/system 文")
    string(FIND "${err}" "${want}" at)
    expect("stderr lacks [${want}]: ${err}" at GREATER -1)
  endforeach()

else()
  message(FATAL_ERROR "unknown case ${CASE}")
endif()
