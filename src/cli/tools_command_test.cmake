# End-to-end checks of `koto synth`, `koto quantize` and `koto bench`, run by CTest as
# `cmake -DKOTO=... -DFIXTURES=... -DCASE=... -DWORK_DIR=... -P this`.
cmake_minimum_required(VERSION 3.25)

function(expect message)
  if(NOT (${ARGN}))
    message(FATAL_ERROR "${CASE}: ${message}")
  endif()
endfunction()

set(dir "${WORK_DIR}/tools_${CASE}")
file(REMOVE_RECURSE "${dir}")
file(MAKE_DIRECTORY "${dir}")

if(CASE STREQUAL "synth_info_run")
  # A tiny synthetic model describes itself and answers (meaningless text, but it runs).
  execute_process(COMMAND "${KOTO}" synth --shape tiny --type Q4_K_M --seed 3 -o "${dir}/tiny.gguf"
                  OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc)
  expect("synth exit code ${rc}: ${err}" rc EQUAL 0)
  expect("no file written" EXISTS "${dir}/tiny.gguf")
  execute_process(COMMAND "${KOTO}" info --json "${dir}/tiny.gguf" OUTPUT_VARIABLE info ERROR_VARIABLE err RESULT_VARIABLE rc)
  expect("info exit code ${rc}: ${err}" rc EQUAL 0)
  string(JSON arch GET "${info}" architecture)
  expect("architecture ${arch}" arch STREQUAL "llama")
  execute_process(COMMAND ${CMAKE_COMMAND} -E env KOTO_LANG=en "${KOTO}" run -m "${dir}/tiny.gguf" --raw --temp 0 -n 12
                          --stats "こんにちは"
                  OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc)
  expect("run exit code ${rc}: ${err}" rc EQUAL 0)
  string(FIND "${err}" "12 tokens" at)
  expect("run did not generate 12 tokens: ${err}" at GREATER -1)
  # Unknown shapes are refused with the list of known ones and exit code 2.
  execute_process(COMMAND "${KOTO}" synth --shape llama9 -o "${dir}/x.gguf" OUTPUT_VARIABLE out ERROR_VARIABLE err
                  RESULT_VARIABLE rc)
  expect("unknown shape: exit code ${rc}" rc EQUAL 2)
  string(FIND "${err}" "qwen2.5-1.5b" at)
  expect("the message does not list the shapes: ${err}" at GREATER -1)

elseif(CASE STREQUAL "quantize_logits")
  # F32 fixture → Q8_0: the file reloads, and its logits agree with the F32 reference
  # on every position's argmax except where the reference's top-2 gap is tiny.
  execute_process(COMMAND "${KOTO}" quantize "${FIXTURES}/arch/llama-gqa-F32.gguf" "${dir}/q8.gguf" Q8_0 --json
                  OUTPUT_VARIABLE report ERROR_VARIABLE err RESULT_VARIABLE rc)
  expect("quantize exit code ${rc}: ${err}" rc EQUAL 0)
  string(JSON type GET "${report}" type)
  string(JSON error GET "${report}" relative_rms_error)
  expect("type ${type}" type STREQUAL "Q8_0")
  expect("relative RMS error ${error} out of range" error GREATER 0.0001 AND error LESS 0.01)
  file(READ "${FIXTURES}/arch/llama-gqa-F32.meta.json" meta)
  string(JSON n_tokens LENGTH "${meta}" tokens)
  math(EXPR last "${n_tokens} - 1")
  set(tokens "")
  foreach(i RANGE ${last})
    string(JSON id GET "${meta}" tokens ${i})
    list(APPEND tokens ${id})
  endforeach()
  list(JOIN tokens "," token_list)
  execute_process(COMMAND "${KOTO}" logits -m "${dir}/q8.gguf" --tokens "${token_list}" -o "${dir}/q8.logits"
                  OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc)
  expect("logits exit code ${rc}: ${err}" rc EQUAL 0)
  file(SIZE "${dir}/q8.logits" size)
  math(EXPR want "${n_tokens} * 512 * 4")
  expect("logits file has ${size} bytes, want ${want}" size EQUAL want)
  # The next token after the prefix whose reference top-2 gap is largest: Q8_0 must agree there.
  set(best_gap 0)
  set(best 0)
  foreach(i RANGE ${last})
    string(JSON gap GET "${meta}" reference_top1_top2_gap ${i})
    if(gap GREATER best_gap)
      set(best_gap ${gap})
      set(best ${i})
    endif()
  endforeach()
  math(EXPR prefix_length "${best} + 1")
  list(SUBLIST tokens 0 ${prefix_length} prefix)
  list(JOIN prefix "," prefix_list)
  string(JSON want_next GET "${meta}" reference_top1 ${best})
  execute_process(COMMAND "${KOTO}" logits -m "${dir}/q8.gguf" --tokens "${prefix_list}" -o "${dir}/prefix.logits"
                  OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc)
  expect("logits exit code ${rc}: ${err}" rc EQUAL 0)
  string(REGEX MATCH "next token ([0-9]+)" m "${out}")
  expect("no next token printed: ${out}" m)
  expect("next token ${CMAKE_MATCH_1} after ${prefix_length} tokens, reference ${want_next} (gap ${best_gap})"
         CMAKE_MATCH_1 EQUAL want_next)

elseif(CASE STREQUAL "bench_json")
  execute_process(COMMAND "${KOTO}" bench -m "${FIXTURES}/models/stories260K.gguf" -p 16 -n 8 -r 1 -t 1
                          --bandwidth-mb 64 --json --results-dir "${dir}/results"
                  OUTPUT_VARIABLE json ERROR_VARIABLE err RESULT_VARIABLE rc)
  expect("bench exit code ${rc}: ${err}" rc EQUAL 0)
  foreach(key timestamp git_commit machine model threads n_prompt n_gen repetitions load_s pp_tokens_per_s ttft_s
              tg_tokens_per_s bandwidth_gb_per_s tg_roofline_percent peak_rss_bytes session_bytes)
    string(JSON value ERROR_VARIABLE missing GET "${json}" ${key})
    expect("key ${key} missing in ${json}" NOT missing)
  endforeach()
  string(JSON n_prompt GET "${json}" n_prompt)
  string(JSON pp GET "${json}" pp_tokens_per_s mean)
  string(JSON tg GET "${json}" tg_tokens_per_s mean)
  string(JSON samples LENGTH "${json}" tg_tokens_per_s samples)
  string(JSON cpu GET "${json}" machine cpu_model)
  string(JSON bytes GET "${json}" model file_bytes)
  expect("n_prompt ${n_prompt}" n_prompt EQUAL 16)
  expect("pp ${pp}" pp GREATER 0)
  expect("tg ${tg}" tg GREATER 0)
  expect("tg samples ${samples}" samples EQUAL 1)
  expect("file_bytes ${bytes}" bytes EQUAL 1185376)
  string(LENGTH "${cpu}" cpu_length)
  expect("no CPU model" cpu_length GREATER 0)
  file(GLOB saved "${dir}/results/*.json")
  list(LENGTH saved n_saved)
  expect("--results-dir wrote ${n_saved} files" n_saved EQUAL 1)

else()
  message(FATAL_ERROR "unknown case ${CASE}")
endif()
file(REMOVE_RECURSE "${dir}")
