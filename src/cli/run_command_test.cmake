# End-to-end checks of `koto run`, run by CTest as `cmake -DKOTO=... -DFIXTURES=... -DCASE=... -P this`.
# Each case runs the real binary and checks exit code, stdout bytes and stderr.
cmake_minimum_required(VERSION 3.25)

set(model "${FIXTURES}/models/stories260K.gguf")
file(READ "${FIXTURES}/models/stories260K.greedy.txt" greedy)

# expect("message" CONDITION...): fails the case with the message unless the if() condition holds.
function(expect message)
  if(NOT (${ARGN}))
    message(FATAL_ERROR "${CASE}: ${message}")
  endif()
endfunction()

if(CASE STREQUAL "greedy_story")
  # The known 200-token greedy story, byte for byte (stdout is a pipe: no newline added).
  execute_process(COMMAND "${KOTO}" run -m "${model}" --raw --temp 0 -n 200 ""
                  OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc)
  expect("exit code ${rc}, stderr: ${err}" rc EQUAL 0)
  string(COMPARE EQUAL "${out}" "${greedy}" same)
  expect("stdout differs from stories260K.greedy.txt:\n[${out}]" same)

elseif(CASE STREQUAL "greedy_story_stdin")
  execute_process(COMMAND "${KOTO}" run -m "${model}" --raw --temp 0 -n 200 --file -
                  INPUT_FILE /dev/null OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc)
  expect("exit code ${rc}, stderr: ${err}" rc EQUAL 0)
  string(COMPARE EQUAL "${out}" "${greedy}" same)
  expect("stdout differs from stories260K.greedy.txt:\n[${out}]" same)

elseif(CASE STREQUAL "raw_continuation")
  # --raw continues the text: the space before the first generated word is kept.
  execute_process(COMMAND "${KOTO}" run -m "${model}" --raw --temp 0 -n 6 "Once upon a time there was a little"
                  OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc)
  expect("exit code ${rc}, stderr: ${err}" rc EQUAL 0)
  expect("stdout is [${out}], want [ girl named Lily.]" out STREQUAL " girl named Lily.")

elseif(CASE STREQUAL "missing_model")
  execute_process(COMMAND "${KOTO}" run -m "${FIXTURES}/models/no-such-model.gguf" "こんにちは"
                  OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc)
  expect("exit code ${rc} (want 1), stderr: ${err}" rc EQUAL 1)
  string(FIND "${err}" "no-such-model.gguf" at)
  expect("the message does not name the file: ${err}" at GREATER -1)
  string(LENGTH "${out}" out_length)
  expect("printed to stdout: ${out}" out_length EQUAL 0)

elseif(CASE STREQUAL "stats_json")
  set(json_path "${WORK_DIR}/koto_run_stats.json")
  file(REMOVE "${json_path}")
  execute_process(COMMAND "${KOTO}" run -m "${model}" --raw --temp 0 -n 50 --stats --stats-json "${json_path}" ""
                  OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc)
  expect("exit code ${rc}, stderr: ${err}" rc EQUAL 0)
  file(READ "${json_path}" json)
  foreach(key load_s prompt_tokens prompt_tokens_per_s time_to_first_token_s generated_tokens
              generation_tokens_per_s chars_per_s peak_rss_bytes cpu_percent_of_one_core
              cpu_percent_of_all_cores threads seed stop_reason)
    string(JSON value ERROR_VARIABLE missing GET "${json}" ${key})
    expect("key ${key} missing in ${json}" NOT missing)
  endforeach()
  string(JSON generated GET "${json}" generated_tokens)
  string(JSON reason GET "${json}" stop_reason)
  string(JSON rss GET "${json}" peak_rss_bytes)
  expect("generated_tokens = ${generated}" generated EQUAL 50)
  expect("stop_reason = ${reason}" reason STREQUAL max_tokens)
  expect("peak_rss_bytes = ${rss}" rss GREATER 0)
  string(FIND "${err}" "tokens/s" at_en)
  string(FIND "${err}" "トークン" at_ja)
  expect("--stats printed no block: ${err}" at_en GREATER -1 OR at_ja GREATER -1)

elseif(CASE STREQUAL "chat_without_template")
  # stories260K has no chat template: the plain format is used, with a warning on stderr.
  execute_process(COMMAND "${KOTO}" run -m "${model}" --temp 0 -n 20 "Once upon a time"
                  OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc)
  expect("exit code ${rc}, stderr: ${err}" rc EQUAL 0)
  string(FIND "${err}" "plain" at)
  expect("no warning about the plain format: ${err}" at GREATER -1)

elseif(CASE STREQUAL "chat_without_template_ja")
  # The same warning in Japanese (KOTO_LANG=ja), and the answer still comes out.
  execute_process(COMMAND "${KOTO}" run -m "${model}" --temp 0 -n 20 "Once upon a time"
                  OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc)
  expect("exit code ${rc}, stderr: ${err}" rc EQUAL 0)
  string(FIND "${err}" "チャットテンプレートがありません" at)
  expect("no Japanese warning about the missing template: ${err}" at GREATER -1)
  string(LENGTH "${out}" out_length)
  expect("no answer on stdout" out_length GREATER 0)

elseif(CASE STREQUAL "prompt_too_long")
  execute_process(COMMAND "${KOTO}" run -m "${model}" --raw -c 16 -n 5
                  "Once upon a time there was a little girl who liked to play in the park with her friends"
                  OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc)
  expect("a prompt longer than the context was accepted" NOT rc EQUAL 0)
  string(FIND "${err}" "-c" at)
  expect("the message does not say which option to change: ${err}" at GREATER -1)

elseif(CASE STREQUAL "context_too_big")
  # A KV cache of 2e9 positions cannot fit anywhere: refused before allocating, with a smaller -c.
  execute_process(COMMAND "${KOTO}" run -m "${model}" -c 2000000000 "こんにちは"
                  OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc)
  expect("exit code ${rc} (want 1), stderr: ${err}" rc EQUAL 1)
  string(REGEX MATCH "-c [0-9]+" suggestion "${err}")
  expect("no smaller -c suggested: ${err}" suggestion)

elseif(CASE STREQUAL "timeline_ja")
  # --timeline writes the SVG picture and its samples; the marks follow the run's phases.
  set(svg "${WORK_DIR}/koto_run_timeline.svg")
  file(REMOVE "${svg}" "${svg}.json")
  execute_process(COMMAND "${KOTO}" run -m "${model}" --raw --temp 0 -n 200 --timeline "${svg}" ""
                  OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc)
  expect("exit code ${rc}, stderr: ${err}" rc EQUAL 0)
  string(COMPARE EQUAL "${out}" "${greedy}" same)
  expect("the answer changed with --timeline" same)
  file(READ "${svg}" picture)
  string(FIND "${picture}" "<svg xmlns=" svg_at)
  expect("not an SVG: ${picture}" svg_at EQUAL 0)
  foreach(label "読み込み" "プロンプト処理" "生成" "最初のトークン" "stories260K.gguf")
    string(FIND "${picture}" "${label}" at)
    expect("the picture lacks ${label}" at GREATER -1)
  endforeach()
  file(READ "${svg}.json" json)
  string(JSON n_marks LENGTH "${json}" marks)
  set(phases "")
  math(EXPR last "${n_marks} - 1")
  foreach(i RANGE ${last})
    string(JSON phase GET "${json}" marks ${i} phase)
    list(APPEND phases ${phase})
  endforeach()
  string(JOIN "," phases_text ${phases})
  expect("marks ${phases_text}" phases_text STREQUAL "start,load,prompt,first_token,generation,end")
  string(JSON watched GET "${json}" watched_bytes)
  file(SIZE "${model}" model_size)
  expect("watched ${watched} bytes of a ${model_size}-byte model" watched EQUAL model_size)

elseif(CASE STREQUAL "interrupted")
  # Ctrl-C in the middle of an answer: generation stops between tokens, the statistics so far
  # are printed, and the exit code is 130. A model of real shape (0.5B, random weights) runs
  # slowly enough that the signal, sent after 4 s, lands while it is still generating (its
  # 4096-token context would take far longer to fill). `--foreground`: otherwise timeout sends
  # the signal twice (to the command, then to its whole process group), and a second Ctrl-C
  # rightly ends koto at once, without the statistics, when the first was already handled.
  set(slow_model "${WORK_DIR}/koto_run_interrupted.gguf")
  execute_process(COMMAND "${KOTO}" synth --shape qwen2.5-0.5b --type Q4_0 -o "${slow_model}"
                  OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc)
  expect("synth failed (${rc}): ${err}" rc EQUAL 0)
  execute_process(COMMAND timeout --foreground --preserve-status -s INT 4 "${KOTO}" run -m "${slow_model}" --raw -c 4096 -n -1
                          --seed 1 "a"
                  OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc)
  file(REMOVE "${slow_model}")
  expect("exit code ${rc} (want 130), stderr: ${err}" rc EQUAL 130)
  string(FIND "${err}" "interrupted" said_interrupted)
  expect("no 'interrupted' message: ${err}" said_interrupted GREATER -1)
  string(REGEX MATCH "stopped by: +cancelled" stats_printed "${err}")
  expect("no statistics with stop reason 'cancelled': ${err}" stats_printed)

else()
  message(FATAL_ERROR "unknown CASE ${CASE}")
endif()
