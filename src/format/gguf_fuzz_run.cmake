# Run by ctest (test gguf_fuzz): configures and builds gguf_fuzz with clang in its own
# tree, writes seed files, then fuzzes for SECONDS. Any crash, sanitizer report or
# build failure ends with FATAL_ERROR, which fails the test.
# Inputs: SOURCE_DIR, BINARY_DIR, CLANGXX, FIXTURES, SECONDS.
foreach(var SOURCE_DIR BINARY_DIR CLANGXX FIXTURES SECONDS)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "gguf_fuzz_run.cmake: ${var} is not set")
  endif()
endforeach()

execute_process(COMMAND ${CMAKE_COMMAND} -S ${SOURCE_DIR} -B ${BINARY_DIR} -G Ninja
                        -DCMAKE_CXX_COMPILER=${CLANGXX} -DCMAKE_BUILD_TYPE=Release -DKOTO_FUZZ=ON
                        -DKOTO_BUILD_BENCH=OFF -DKOTO_FIXTURES_DIR=${FIXTURES}
                OUTPUT_QUIET RESULT_VARIABLE rc)
if(rc)
  message(FATAL_ERROR "configuring the clang fuzz build in ${BINARY_DIR} failed (${rc})")
endif()
execute_process(COMMAND ${CMAKE_COMMAND} --build ${BINARY_DIR} -j2 --target gguf_fuzz gguf_fuzz_seeds
                RESULT_VARIABLE rc)
if(rc)
  message(FATAL_ERROR "building gguf_fuzz with ${CLANGXX} failed (${rc})")
endif()

set(corpus ${BINARY_DIR}/corpus)  # new inputs found by this run; fresh each time
set(seeds ${BINARY_DIR}/seeds)    # small files written by our GgufWriter
file(REMOVE_RECURSE ${corpus} ${seeds})
file(MAKE_DIRECTORY ${corpus} ${seeds})
execute_process(COMMAND ${BINARY_DIR}/gguf_fuzz_seeds ${seeds} RESULT_VARIABLE rc)
if(rc)
  message(FATAL_ERROR "gguf_fuzz_seeds failed (${rc})")
endif()

# Fixture files are read in place (never copied): the small quant files, the tiny model.
file(GLOB fixture_seeds ${FIXTURES}/quant/*.gguf ${FIXTURES}/models/stories260K.gguf)
if(NOT fixture_seeds)
  message(FATAL_ERROR "no fixture GGUF files under ${FIXTURES} (set -DKOTO_FIXTURES_DIR=...)")
endif()
list(JOIN fixture_seeds "," seed_inputs)

execute_process(COMMAND ${BINARY_DIR}/gguf_fuzz ${corpus} ${seeds} -seed_inputs=${seed_inputs}
                        -max_total_time=${SECONDS} -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=512
                        -print_final_stats=1 -artifact_prefix=${BINARY_DIR}/
                RESULT_VARIABLE rc)
if(rc)
  message(FATAL_ERROR "gguf_fuzz found a failure (exit ${rc}); the input is saved in ${BINARY_DIR}/ "
                      "(crash-*, leak-*, timeout-*, oom-*); reproduce with: ${BINARY_DIR}/gguf_fuzz <file>")
endif()
