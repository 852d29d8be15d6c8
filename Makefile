# deepseek.h - build, test, demo. Every target is one visible compiler line (or a short recipe).
#   make          check the header (C and C++) and build the examples
#   make test     the tests (C99 and C++ builds of the header, then the test program)
#   make demo     the whole pipeline on the bundled data: tokenizer, pretraining, SFT, DPO, chat (~5 minutes)
#   make asan     the tests under AddressSanitizer and UndefinedBehaviorSanitizer
#   make fuzz     libFuzzer targets (clang): JSON, tokenizer.json, checkpoints, trainer state, JSONL, DSTOKENS, encoders, sampler
#   make check-hf compare with Hugging Face `tokenizers` (npm; skips without node)
#   make check-torch  loss and gradients against PyTorch (python3-torch; skips without it)
#   make bench    tokenizer beside HF `tokenizers`, trainer beside PyTorch (make bench-train: only that)
#   make cuda     the CUDA build (nvcc): the examples under build/cuda/ and the CUDA test program
#   make test-cuda  the CUDA tests (each skipped, with the reason, without a device)
#   make check-cuda   every GPU check in one run, for a machine with a GPU (tools/cuda_check.sh)
#   make bench-cuda   the CUDA trainer beside PyTorch eager and torch.compile, bf16 (bench/bench_cuda.sh)
#   make test-cuda-emu  the CUDA backend's kernels and tests on the CPU emulator of tests/cuda/emu (no GPU, no nvcc)
#   make mpi      the MPI build (mpicc, -DDS_MPI): 02_pretrain, 05_sft and the MPI test under build/mpi/
#   make test-mpi the data-parallel tests under mpirun (each skipped, with the reason, without Open MPI)
#   make bench-dp tokens/s on 1 and 2 ranks, the MPI share, the cost of a checkpoint (sync vs background)
#   make clean

CC      ?= cc
CXX     ?= c++
# -march=native only where the compiler accepts it. -ffp-contract=fast lets the compiler fuse
# a*b+c into one FMA (ISO C modes otherwise forbid it, halving the matmul's speed). Never -Ofast:
# it breaks the NaN checks and reassociates sums that the tests compare bit for bit.
NATIVE  := $(shell $(CC) -march=native -x c -c /dev/null -o /dev/null 2>/dev/null && echo -march=native)
CFLAGS  ?= -O3 $(NATIVE) -ffp-contract=fast
WARN     = -Wall -Wextra -Werror
LDLIBS   = -lm -lpthread
B        = build

EXAMPLES = $(B)/01_tokenizer $(B)/02_pretrain $(B)/03_lr_schedules $(B)/04_scaling $(B)/05_sft $(B)/06_dpo $(B)/07_chat

.PHONY: all test test-cuda test-cuda-emu cuda check-cuda bench-cuda mpi test-mpi bench-dp demo asan fuzz fuzz-run check-hf check-torch bench bench-train bench-ops bench-flip bench-flip-train clean

# The CUDA path (deepseek_cuda.cuh): nvcc compiles the same sources as CUDA with -DDS_CUDA. sm_90
# (H100/H200) with PTX for later GPUs: nvcc 13 alone would target sm_75, where bf16 tensor-core
# code does not compile. Without nvcc these targets say so and succeed.
NVCC    ?= $(shell command -v nvcc 2>/dev/null || ls /usr/local/cuda/bin/nvcc 2>/dev/null)
NVARCH  ?= -gencode arch=compute_90,code=[sm_90,compute_90]
NVFLAGS ?= -O3 -std=c++14 $(NVARCH) -Xcompiler -Wall,-Wextra,-Werror
CU       = $(B)/cuda
CUDA_EXAMPLES = $(CU)/01_tokenizer $(CU)/02_pretrain $(CU)/03_lr_schedules $(CU)/04_scaling $(CU)/05_sft $(CU)/06_dpo $(CU)/07_chat

all: $(B)/check_c $(B)/check_cpp $(EXAMPLES)

$(B):
	@mkdir -p $(B)

# The header must compile as C99 and as C++, with and without the implementation.
$(B)/check_c: tests/compile_check.c deepseek.h | $(B)
	$(CC) -std=c99 $(WARN) -pedantic -Wno-overlength-strings $(CFLAGS) -o $@ tests/compile_check.c tests/compile_check_impl.c $(LDLIBS)

$(B)/check_cpp: tests/compile_check.c deepseek.h | $(B)
	$(CXX) -x c++ -std=c++11 $(WARN) $(CFLAGS) -o $@ tests/compile_check.c tests/compile_check_impl.c $(LDLIBS)

# the serial build (DS_NO_THREADS) compiles too
$(B)/check_serial: tests/compile_check.c deepseek.h | $(B)
	$(CC) -std=c99 $(WARN) -DDS_NO_THREADS $(CFLAGS) -o $@ tests/compile_check.c tests/compile_check_impl.c -lm

# one program: the float build (main.c) and a static double build for gradient checks (gradcheck.c)
$(B)/run_tests: tests/main.c tests/gradcheck.c tests/test.h tests/test_*.c deepseek.h | $(B)
	$(CC) -std=c99 $(WARN) $(CFLAGS) -g -o $@ tests/main.c tests/gradcheck.c $(LDLIBS)

# the products again under the smallest blocking a user may set (DS_MM_KC, DS_MM_KB, DS_MM_NC): the
# pool's buffers must hold the bf16 mode's blocks too, whatever the float path's (asserted)
$(B)/run_tests_blocking: tests/main.c tests/gradcheck.c tests/test.h tests/test_*.c deepseek.h | $(B)
	$(CC) -std=c99 $(WARN) $(CFLAGS) -DDS_MM_KC=32 -DDS_MM_KB=1 -DDS_MM_NC=128 -o $@ tests/main.c tests/gradcheck.c $(LDLIBS)

# the fuzz targets built as plain programs that replay files (no libFuzzer needed)
$(B)/replay_%: tests/fuzz/fuzz_%.c tests/fuzz/replay_main.h deepseek.h | $(B)
	$(CC) -std=c99 $(WARN) -O1 -g -DDS_FUZZ_MAIN -o $@ $< $(LDLIBS)

test: $(B)/check_c $(B)/check_cpp $(B)/check_serial $(B)/replay_json $(B)/replay_tokenizer $(B)/replay_safetensors $(B)/replay_dataset $(B)/replay_tokens $(B)/replay_encode $(B)/replay_sample $(B)/replay_state $(B)/replay_deepseek $(B)/replay_index $(B)/run_tests $(B)/run_tests_blocking
	./$(B)/check_c && ./$(B)/check_cpp && ./$(B)/check_serial
	./$(B)/replay_json tests/fuzz/seeds/json/* && ./$(B)/replay_tokenizer tests/fuzz/seeds/tokenizer/* && ./$(B)/replay_safetensors tests/fuzz/seeds/safetensors/* && ./$(B)/replay_dataset tests/fuzz/seeds/dataset/* && ./$(B)/replay_tokens tests/fuzz/seeds/tokens/* && ./$(B)/replay_encode tests/fuzz/seeds/encode/*
	./$(B)/replay_sample tests/fuzz/seeds/sample/* && ./$(B)/replay_state tests/fuzz/seeds/state/* && ./$(B)/replay_deepseek tests/fuzz/seeds/deepseek/* && ./$(B)/replay_index tests/fuzz/seeds/index/*
	@$(MAKE) --no-print-directory test-cuda
	@$(MAKE) --no-print-directory test-cuda-emu
	@$(MAKE) --no-print-directory test-mpi
	./$(B)/run_tests_blocking matmul && ./$(B)/run_tests_blocking bf16_products
	./$(B)/run_tests

# the CUDA build and tests: compiled wherever nvcc is, run (or skipped, with the reason) here
test-cuda:
	@if [ -n "$(NVCC)" ]; then $(MAKE) --no-print-directory cuda && ./$(CU)/test_cuda; \
	 else echo "test-cuda: the CUDA build was skipped (nvcc not found)"; fi

# The MPI build (docs/distributed.md): the same sources through mpicc with -DDS_MPI. The tests
# run 1, 2 and 4 ranks on this machine (shared memory and loopback; tests/mpi/run.sh).
MPICC   ?= $(shell command -v mpicc 2>/dev/null)
MP       = $(B)/mpi
MPI_PROGRAMS = $(MP)/02_pretrain $(MP)/05_sft $(MP)/test_mpi

mpi:
	@if [ -z "$(MPICC)" ]; then echo "mpi: skipped (mpicc not found: apt-get install libopenmpi-dev openmpi-bin)"; else $(MAKE) --no-print-directory $(MPI_PROGRAMS); fi

test-mpi: $(B)/test_dp
	@if [ -n "$(MPICC)" ]; then $(MAKE) --no-print-directory mpi; fi
	sh tests/mpi/run.sh $(B)

$(MP):
	@mkdir -p $(MP)

$(MP)/%: examples/%.c examples/common.h examples/task.h deepseek.h | $(MP)
	$(MPICC) -std=c99 $(WARN) $(CFLAGS) -DDS_MPI -o $@ $< $(LDLIBS)

$(MP)/bench_dp: bench/bench_dp.c deepseek.h | $(MP)
	$(MPICC) -std=c99 $(WARN) $(CFLAGS) -DDS_MPI -o $@ bench/bench_dp.c $(LDLIBS)

$(B)/bench_dp: bench/bench_dp.c deepseek.h | $(B)
	$(CC) -std=c99 $(WARN) $(CFLAGS) -o $@ bench/bench_dp.c $(LDLIBS)

bench-dp: $(B)/bench_dp
	@$(MAKE) --no-print-directory mpi $(MP)/bench_dp
	sh bench/bench_dp.sh

$(MP)/test_mpi: tests/mpi/test_mpi.c deepseek.h | $(MP)
	$(MPICC) -std=c99 $(WARN) $(CFLAGS) -DDS_MPI -o $@ tests/mpi/test_mpi.c $(LDLIBS)

# the same test program without MPI: one process accumulating the micro-batches
$(B)/test_dp: tests/mpi/test_mpi.c deepseek.h | $(B)
	$(CC) -std=c99 $(WARN) $(CFLAGS) -o $@ tests/mpi/test_mpi.c $(LDLIBS)

cuda:
	@if [ -z "$(NVCC)" ]; then echo "cuda: skipped (nvcc not found)"; else $(MAKE) --no-print-directory $(CUDA_EXAMPLES) $(CU)/test_cuda; fi

$(CU):
	@mkdir -p $(CU)

check-cuda:
	sh tools/cuda_check.sh build/cuda_check

# the GPU benchmark beside PyTorch (bench/bench_cuda.sh; says so and succeeds without a GPU)
bench-cuda:
	@if [ -z "$(NVCC)" ]; then echo "bench-cuda: skipped (nvcc not found)"; else sh bench/bench_cuda.sh; fi

# the benchmark's trainer and the interop check's logit dump, as CUDA programs (not in `make cuda`:
# only a GPU machine runs them)
# (bench_train_fp32att: bf16 mode's attention on the fp32 kernels, the tensor-core attention's A/B)
$(CU)/bench_train: bench/bench_train.c deepseek.h deepseek_cuda.cuh | $(CU)
	$(NVCC) $(NVFLAGS) -DDS_CUDA -x cu -o $@ bench/bench_train.c -lcublasLt -lcublas -lpthread
$(CU)/bench_train_fp32att: bench/bench_train.c deepseek.h deepseek_cuda.cuh | $(CU)
	$(NVCC) $(NVFLAGS) -DDS_CUDA -DDS_CUDA_FP32_ATTENTION -x cu -o $@ bench/bench_train.c -lcublasLt -lcublas -lpthread
$(CU)/dump_logits: tools/dump_logits.c deepseek.h deepseek_cuda.cuh | $(CU)
	$(NVCC) $(NVFLAGS) -DDS_CUDA -x cu -o $@ tools/dump_logits.c -lcublasLt -lcublas -lpthread
# what a model allocates on the device (docs/cuda.md's memory table), on a GPU or the emulator
$(CU)/cuda_alloc: tools/cuda_alloc.c deepseek.h deepseek_cuda.cuh | $(CU)
	$(NVCC) $(NVFLAGS) -x cu -o $@ tools/cuda_alloc.c -lcublasLt -lcublas -lpthread

$(B)/dump_logits: tools/dump_logits.c deepseek.h | $(B)
	$(CC) -std=c99 $(WARN) $(CFLAGS) -o $@ tools/dump_logits.c $(LDLIBS)

# each example, unchanged, as a CUDA program
$(CU)/%: examples/%.c examples/common.h examples/task.h deepseek.h deepseek_cuda.cuh | $(CU)
	$(NVCC) $(NVFLAGS) -DDS_CUDA -x cu -o $@ $< -lcublasLt -lcublas -lpthread

# the CUDA tests: the CUDA build (nvcc) linked with the CPU reference (cc, static)
$(CU)/cuda_ref.o: tests/cuda/cuda_ref.c tests/cuda/cuda_ref.h deepseek.h | $(CU)
	$(CC) -std=c99 $(WARN) -O2 -c -o $@ tests/cuda/cuda_ref.c

$(CU)/test_cuda.o: tests/cuda/test_cuda.c tests/cuda/cuda_ref.h tests/test.h deepseek.h deepseek_cuda.cuh | $(CU)
	$(NVCC) $(NVFLAGS) -x cu -c -o $@ tests/cuda/test_cuda.c

$(CU)/test_cuda: $(CU)/test_cuda.o $(CU)/cuda_ref.o
	$(NVCC) $(NVARCH) -o $@ $(CU)/test_cuda.o $(CU)/cuda_ref.o -lcublasLt -lcublas -lpthread

# The CUDA backend on the CPU emulator (tests/cuda/emu/cuda_runtime.h says what it is and is
# not): deepseek_cuda.cuh compiled as C++ by $(CXX), its launches run as fibers, cuBLAS as loops.
# Its own self-test first, then every CUDA test against the CPU ops. No tail merging: two
# __syncthreads of the source must stay two call sites for its divergence check.
EMU      = $(B)/cuda_emu
EMUOPT  := $(shell $(CXX) -O2 -fno-crossjumping -fno-tree-tail-merge -Werror -x c++ -c /dev/null -o /dev/null 2>/dev/null && echo -fno-crossjumping -fno-tree-tail-merge)
EMUFLAGS = -std=c++14 -O2 $(EMUOPT) -g $(WARN) -I tests/cuda/emu
EMUHDRS  = tests/cuda/emu/cuda_runtime.h tests/cuda/emu/cublas_v2.h tests/cuda/emu/cublasLt.h tests/cuda/emu/cuda_bf16.h tests/cuda/emu/mma.h

$(EMU):
	@mkdir -p $(EMU)

$(EMU)/test_emu: tests/cuda/emu/test_emu.cpp $(EMUHDRS) | $(EMU)
	$(CXX) $(EMUFLAGS) -o $@ tests/cuda/emu/test_emu.cpp

$(EMU)/cuda_ref.o: tests/cuda/cuda_ref.c tests/cuda/cuda_ref.h deepseek.h | $(EMU)
	$(CC) -std=c99 $(WARN) -O2 -c -o $@ tests/cuda/cuda_ref.c

$(EMU)/test_cuda: tests/cuda/test_cuda.c tests/cuda/cuda_ref.h tests/test.h deepseek.h deepseek_cuda.cuh $(EMUHDRS) $(EMU)/cuda_ref.o | $(EMU)
	$(CXX) $(EMUFLAGS) -x c++ -o $@ tests/cuda/test_cuda.c -x none $(EMU)/cuda_ref.o -lm -lpthread

$(EMU)/cuda_alloc: tools/cuda_alloc.c deepseek.h deepseek_cuda.cuh $(EMUHDRS) | $(EMU)
	$(CXX) $(EMUFLAGS) -x c++ -o $@ tools/cuda_alloc.c -lm -lpthread

test-cuda-emu: $(EMU)/test_emu $(EMU)/test_cuda $(EMU)/cuda_alloc
	./$(EMU)/test_emu 2>/dev/null || ./$(EMU)/test_emu
	./$(EMU)/test_cuda

$(B)/01_tokenizer: examples/01_tokenizer.c deepseek.h | $(B)
	$(CC) -std=c99 $(WARN) $(CFLAGS) -o $@ examples/01_tokenizer.c $(LDLIBS)

$(B)/02_pretrain: examples/02_pretrain.c examples/common.h deepseek.h | $(B)
	$(CC) -std=c99 $(WARN) $(CFLAGS) -o $@ examples/02_pretrain.c $(LDLIBS)

$(B)/03_lr_schedules: examples/03_lr_schedules.c examples/common.h deepseek.h | $(B)
	$(CC) -std=c99 $(WARN) $(CFLAGS) -o $@ examples/03_lr_schedules.c $(LDLIBS)

$(B)/04_scaling: examples/04_scaling.c examples/common.h deepseek.h | $(B)
	$(CC) -std=c99 $(WARN) $(CFLAGS) -o $@ examples/04_scaling.c $(LDLIBS)

$(B)/05_sft: examples/05_sft.c examples/common.h examples/task.h deepseek.h | $(B)
	$(CC) -std=c99 $(WARN) $(CFLAGS) -o $@ examples/05_sft.c $(LDLIBS)

$(B)/06_dpo: examples/06_dpo.c examples/common.h examples/task.h deepseek.h | $(B)
	$(CC) -std=c99 $(WARN) $(CFLAGS) -o $@ examples/06_dpo.c $(LDLIBS)

$(B)/07_chat: examples/07_chat.c deepseek.h | $(B)
	$(CC) -std=c99 $(WARN) $(CFLAGS) -o $@ examples/07_chat.c $(LDLIBS)

demo: $(B)/01_tokenizer $(B)/02_pretrain $(B)/05_sft $(B)/06_dpo $(B)/07_chat
	./$(B)/01_tokenizer --out $(B)/tokenizer.json
	./$(B)/02_pretrain --out $(B)/pretrain
	./$(B)/05_sft --init $(B)/pretrain/ckpt --val $(B)/pretrain/val.tok --out $(B)/sft
	./$(B)/06_dpo --init $(B)/sft/ckpt --val $(B)/pretrain/val.tok --sft-metrics $(B)/sft/metrics.tsv --out $(B)/dpo
	./$(B)/07_chat --model $(B)/dpo/ckpt --prompt "Say rose 5 times."
	./$(B)/07_chat --model $(B)/dpo/ckpt --prompt "Repeat the word king 11 times."
	./$(B)/07_chat --model $(B)/dpo/ckpt --prompt "Who art thou?"
	@echo; echo "== the pipeline (make demo) =="; cat $(B)/dpo/summary.md

$(B)/run_tests_asan: tests/main.c tests/gradcheck.c tests/test.h tests/test_*.c deepseek.h | $(B)
	clang -std=c99 $(WARN) -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -o $@ tests/main.c tests/gradcheck.c $(LDLIBS)

asan: $(B)/run_tests_asan
	./$(B)/run_tests_asan

# libFuzzer targets; each also builds as a plain program that replays files (tests/fuzz/README.md).
FUZZ = $(B)/fuzz_json $(B)/fuzz_tokenizer $(B)/fuzz_safetensors $(B)/fuzz_dataset $(B)/fuzz_tokens $(B)/fuzz_encode $(B)/fuzz_sample $(B)/fuzz_state $(B)/fuzz_deepseek $(B)/fuzz_index
fuzz: $(FUZZ)
$(B)/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/replay_main.h deepseek.h | $(B)
	clang -g -O1 -fsanitize=fuzzer,address,undefined -o $@ $< -lpthread
fuzz-run: $(FUZZ)
	sh tests/fuzz/run.sh

check-hf: $(B)/01_tokenizer $(B)/tok_ids
	sh tools/check_hf.sh

# PyTorch reference (Debian's python3-torch; skips cleanly without it)
check-torch: $(B)/torch_ref $(B)/torch_ref_f64 $(B)/hf_load_check
	@if /usr/bin/python3 -c 'import torch' 2>/dev/null; then /usr/bin/python3 tools/check_torch.py $(FIXTURE_ARGS); \
	 else echo "check-torch: skipped (PyTorch not installed: apt-get install python3-torch)"; fi

$(B)/torch_ref: tools/torch_ref.c deepseek.h | $(B)
	$(CC) -std=c99 $(WARN) $(CFLAGS) -o $@ tools/torch_ref.c $(LDLIBS)

$(B)/hf_load_check: tools/hf_load_check.c deepseek.h | $(B)
	$(CC) -std=c99 $(WARN) $(CFLAGS) -o $@ tools/hf_load_check.c $(LDLIBS)

$(B)/torch_ref_f64: tools/torch_ref.c deepseek.h | $(B)
	$(CC) -std=c99 $(WARN) -DDS_DOUBLE $(CFLAGS) -o $@ tools/torch_ref.c $(LDLIBS)

$(B)/tok_ids: tools/tok_ids.c deepseek.h | $(B)
	$(CC) -std=c99 $(WARN) $(CFLAGS) -o $@ tools/tok_ids.c $(LDLIBS)

$(B)/bench_train: bench/bench_train.c deepseek.h | $(B)
	$(CC) -std=c99 $(WARN) $(CFLAGS) -o $@ bench/bench_train.c $(LDLIBS)

$(B)/bench_tokenizer: bench/bench_tokenizer.c deepseek.h | $(B)
	$(CC) -std=c99 $(WARN) $(CFLAGS) -o $@ bench/bench_tokenizer.c $(LDLIBS)

bench: $(B)/bench_tokenizer $(B)/bench_train
	sh bench/bench_tokenizer.sh
	sh bench/bench_train.sh

bench-train: $(B)/bench_train
	sh bench/bench_train.sh

# the elementwise ops and attention one task at a time; BASE=<git revision> runs that revision's
# header beside this one (bench/bench_ops.sh)
bench-ops:
	sh bench/bench_ops.sh

# the linears' products of a step from BASE's header (default HEAD) and the working tree's, flipped
# every call in one process (bench/flip_products.sh: CONFIG, THREADS, REPS, PRECISION, EXTRA);
# bench-flip-train: whole training steps, flipped every step (MODE=train: CONFIG, THREADS, STEPS)
bench-flip:
	sh bench/flip_products.sh
bench-flip-train:
	MODE=train sh bench/flip_products.sh

clean:
	rm -rf $(B)

$(B)/ckpt_tool: tools/ckpt_tool.c deepseek.h | $(B)
	$(CC) -std=c99 $(WARN) $(CFLAGS) -o $@ tools/ckpt_tool.c $(LDLIBS)

$(B)/bench_decode: bench/bench_decode.c deepseek.h | $(B)
	$(CC) -std=c99 $(WARN) $(CFLAGS) -o $@ bench/bench_decode.c $(LDLIBS)

$(B)/bench_7b: bench/bench_7b.c deepseek.h | $(B)
	$(CC) -std=c99 $(WARN) $(CFLAGS) -o $@ bench/bench_7b.c $(LDLIBS)

$(B)/bench_load: bench/bench_load.c deepseek.h | $(B)
	$(CC) -std=c99 $(WARN) $(CFLAGS) -o $@ bench/bench_load.c $(LDLIBS)
