# Set-up and everyday commands. `make test` and `make run` install missing Debian
# packages (scripts/install-deps.sh), configure, build, then test or run.
BUILD    ?= build
FIXTURES ?= $(abspath ../shared/fixtures)
JOBS     ?= $(shell nproc)
MODEL    ?= $(FIXTURES)/models/stories260K.gguf
# stories260K is a tiny story model without a chat template: continue from BOS, greedily.
RUN_ARGS ?= --raw --temp 0 -n 200 --stats
PROMPT   ?=

.PHONY: deps configure build test run clean

deps:
	./scripts/install-deps.sh

configure: deps
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release -DKOTO_FIXTURES_DIR=$(FIXTURES)

build: configure
	cmake --build $(BUILD) -j $(JOBS)

test: build
	ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS)

run: build
	./$(BUILD)/koto run -m $(MODEL) $(RUN_ARGS) "$(PROMPT)"

clean:
	rm -rf $(BUILD)
