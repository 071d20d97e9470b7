# The README's commands. Each runs the set-up script first (idempotent, quiet when done).
#   make demo   install, build, run the main job on built-in data: the tiny R1-Zero
#   make pretrain-demo   tokenizer -> pretraining -> chat-template generation on the project's docs
#   make test   install, build, run every test
#   make build  install and build
#   make bench  install, build, run the benchmarks (prints tables)
#   make bench-cpu  the CPU decode kernels, int8's accuracy, and r1 beside llama.cpp's own tools
#               (builds llama.cpp from PyPI's llama-cpp-python source the first time: ~13 min)
#   make check-llamacpp  exported GGUF files in llama.cpp itself (builds llama-cpp-python: ~10 min)
BUILD ?= build
JOBS ?= $(shell nproc)
VENV = $(shell bash scripts/setup.sh --print-venv | tail -n 1)

.PHONY: all setup build test demo pretrain-demo bench bench-cpu check-llamacpp clean

all: build

setup:
	@bash scripts/setup.sh

$(BUILD)/CMakeCache.txt:
	@bash scripts/setup.sh
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release -DR1_PYTHON=$(VENV)/bin/python

build: $(BUILD)/CMakeCache.txt
	@bash scripts/setup.sh
	cmake --build $(BUILD) -j $(JOBS)

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

demo: build
	R1=$(BUILD)/r1 bash recipes/tiny-r1-zero.sh

pretrain-demo: build
	R1=$(BUILD)/r1 bash recipes/pretrain-demo.sh

bench: build
	$(VENV)/bin/python bench/run.py $(BUILD)
	$(VENV)/bin/python bench/run_tokenizer.py $(BUILD) $(BUILD)/data
	$(VENV)/bin/python bench/run_training.py $(BUILD)
	$(VENV)/bin/python bench/run_engine.py $(BUILD)
	$(VENV)/bin/python bench/run_server.py $(BUILD)
	$(VENV)/bin/python bench/run_rewards.py $(BUILD) $(BUILD)/data
	$(VENV)/bin/python bench/run_grpo.py $(BUILD)
	$(VENV)/bin/python bench/run_distill.py $(BUILD)
	$(VENV)/bin/python bench/run_switches.py $(BUILD)
	$(VENV)/bin/python bench/run_moe.py $(BUILD)

bench-cpu: build
	$(VENV)/bin/python bench/run_gemv.py $(BUILD)
	$(VENV)/bin/python bench/run_int8_accuracy.py $(BUILD)
	$(VENV)/bin/python bench/run_llamacpp.py $(BUILD)

# llama.cpp built from PyPI's llama-cpp-python source into the virtualenv; the demo's GRPO model and
# the GRPO-trained SmolLM2 are checked too when make demo / recipes/smollm2-r1.sh have left them.
check-llamacpp: build
	$(VENV)/bin/python -c "import llama_cpp" 2>/dev/null || $(VENV)/bin/python -m pip install llama-cpp-python==0.3.36
	$(VENV)/bin/python bench/check_llamacpp.py $(BUILD) $(wildcard runs/tiny-r1-zero/grpo runs/smollm2-r1/grpo)

clean:
	rm -rf $(BUILD)
