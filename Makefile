# rsa-repro build. `make` builds bin/rsa and build/cpu/libtrainer.a; `make test` runs every test; `make deps`
# installs the Debian packages (as root). Variants: CUDA=1 (cuDNN/cuBLAS/NCCL backend), SAN=1 (ASan + UBSan),
# CUDA=emu (the CUDA build over tests/emu's CPU emulations of CUDA, cuDNN, cuBLAS and NCCL: no GPU needed).

CC      ?= gcc
NVCC    ?= /usr/local/cuda/bin/nvcc
CUDA_HOME ?= /usr/local/cuda
CUDA    ?= 0
SAN     ?= 0

VARIANT := cpu
ifeq ($(CUDA),1)
VARIANT := cuda
else ifeq ($(CUDA),emu)
VARIANT := cuda-emu
else ifneq ($(CUDA),0)
$(error CUDA=$(CUDA): expected 0, 1 or emu)
endif
ifeq ($(SAN),1)
VARIANT := $(VARIANT)-san
endif
BUILD := build/$(VARIANT)

# ---- dependencies (Debian packages; see `make deps`) ----
PKGS_BUILD := gcc g++ make pkg-config liblua5.4-dev lua5.4 libturbojpeg0-dev libjpeg62-turbo-dev zlib1g-dev \
              libopenblas-dev libdnnl-dev libopenmpi-dev openmpi-bin gnuplot-nox dataset-fashion-mnist
PKGS_TEST  := python3-torch python3-torchvision python3-numpy python3-pil clang libclang-rt-14-dev valgrind \
              mate-backgrounds

# DEPS_ROOT: Debian packages unpacked (dpkg-deb -x) into a folder rather than installed, where nothing can be
# installed, as bench/gpu_session.sh does on the GPU machine: their headers and libraries are searched first,
# binaries find the libraries there at run time, and Lua is found without pkg-config.
DEPS_ROOT ?=
ifneq ($(DEPS_ROOT),)
DEPS_ROOT := $(abspath $(DEPS_ROOT))
DEPS_LIBS := $(DEPS_ROOT)/usr/lib/x86_64-linux-gnu $(DEPS_ROOT)/lib/x86_64-linux-gnu
LDFLAGS   += $(DEPS_LIBS:%=-L%) $(DEPS_LIBS:%=-Wl,-rpath,%)
endif
HAVE_DNNL := $(shell test -f /usr/include/oneapi/dnnl/dnnl.h -o -f "$(DEPS_ROOT)/usr/include/oneapi/dnnl/dnnl.h" \
               && echo 1)
LUA_DEPS_ROOT := $(if $(DEPS_ROOT),$(shell test -f $(DEPS_ROOT)/usr/include/lua5.4/lua.h && echo 1))
HAVE_LUA  := $(or $(LUA_DEPS_ROOT),$(shell pkg-config --exists lua5.4 2>/dev/null && echo 1))
HAVE_JPEG := $(shell pkg-config --exists libturbojpeg 2>/dev/null || test -f "$(DEPS_ROOT)/usr/include/turbojpeg.h" \
               && echo 1)
HAVE_BLAS := $(shell pkg-config --exists openblas 2>/dev/null && echo 1)
HAVE_MPI  := $(shell pkg-config --exists ompi-c 2>/dev/null && echo 1)
HAVE_NVCC := $(shell test -x $(NVCC) && echo 1)
# cuDNN and NCCL: the CUDA toolkit's by default; CUDNN_HOME / NCCL_HOME name another folder with include/ and lib/
# (bench/gpu_session.sh points them at PyTorch's wheels when the toolkit has none)
CUDNN_HOME ?= $(CUDA_HOME)
NCCL_HOME ?= $(CUDA_HOME)
HAVE_CUDNN := $(shell test -f $(CUDNN_HOME)/include/cudnn.h && echo 1)
HAVE_NCCL := $(shell test -f $(NCCL_HOME)/include/nccl.h -o -f /usr/include/nccl.h && echo 1)

WARN    := -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter -Wno-format-truncation
CFLAGS  ?= -O3 -g
CFLAGS  += -std=c11 $(WARN) -fopenmp -D_GNU_SOURCE -MMD -MP -I.
ifneq ($(DEPS_ROOT),)
CFLAGS  += -I$(DEPS_ROOT)/usr/include -I$(DEPS_ROOT)/usr/include/x86_64-linux-gnu
endif
LDLIBS  := -ldnnl -lm -lpthread
ifeq ($(LUA_DEPS_ROOT),1)
CFLAGS  += -I$(DEPS_ROOT)/usr/include/lua5.4
LDLIBS  += -llua5.4
else ifeq ($(HAVE_LUA),1)
CFLAGS  += $(shell pkg-config --cflags lua5.4)
LDLIBS  += $(shell pkg-config --libs lua5.4)
endif
# the data pipeline: JPEG through TurboJPEG, gzipped IDX through zlib
CFLAGS  += $(shell pkg-config --cflags libturbojpeg zlib 2>/dev/null)
LDLIBS  += $(shell pkg-config --libs libturbojpeg zlib 2>/dev/null || echo -lturbojpeg -lz)
# Open MPI: the data-parallel engine (trainer/dist), used when a run is started by mpirun
MPI     ?= $(if $(HAVE_MPI),1,0)
ifeq ($(MPI),1)
CFLAGS  += -DRSA_MPI $(shell pkg-config --cflags ompi-c)
LDLIBS  += $(shell pkg-config --libs ompi-c)
NVCC_MPI := -DRSA_MPI $(shell pkg-config --cflags ompi-c)
endif
ifeq ($(SAN),1)
CFLAGS  += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS += -fsanitize=address,undefined
endif

TRAINER_SRC := $(wildcard trainer/*/*.c trainer/*/*/*.c)
CUDA_SRC    := $(wildcard trainer/*/*.cu trainer/*/*/*.cu)
ifeq ($(CUDA),1)
TRAINER_SRC := $(filter-out trainer/backend/backend_nocuda.c,$(TRAINER_SRC))
CUDA_EXTRA  := $(sort $(filter-out $(CUDA_HOME),$(CUDNN_HOME) $(NCCL_HOME)))
CFLAGS      += -DRSA_CUDA -I$(CUDA_HOME)/include $(CUDA_EXTRA:%=-I%/include)
NVCCFLAGS   := -O3 -g -std=c++17 -I. -DRSA_CUDA -MMD -MP --compiler-options -Wall,-Wextra,-Werror,-Wno-unused-parameter \
               -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90 \
               -gencode arch=compute_90,code=compute_90 $(CUDA_EXTRA:%=-I%/include)
LDLIBS      += $(CUDA_EXTRA:%=-L%/lib) $(CUDA_EXTRA:%=-Wl,-rpath,%/lib) \
               -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcudnn -lcublas -lnccl -lcudart -lstdc++
else ifeq ($(CUDA),emu)
# compiled as CUDA=1 compiles it (RSA_CUDA), its .cu files by g++ (the emulation block below), and linked with the
# emulations instead of the libraries; RSA_CUDA_EMU tells the tests which (testlib.h: they try the cuda backend)
TRAINER_SRC := $(filter-out trainer/backend/backend_nocuda.c,$(TRAINER_SRC))
CUDA_EXTRA  := $(sort $(filter-out $(CUDA_HOME),$(CUDNN_HOME) $(NCCL_HOME)))
CFLAGS      += -DRSA_CUDA -DRSA_CUDA_EMU -I$(CUDA_HOME)/include $(CUDA_EXTRA:%=-I%/include)
LDLIBS      += -lstdc++
else
TRAINER_SRC := $(filter-out $(wildcard trainer/*/*_cuda.c trainer/*/*/*_cuda.c),$(TRAINER_SRC))
CUDA_SRC    :=
endif

ifeq ($(CUDA),emu)
TRAINER_OBJ := $(TRAINER_SRC:%.c=$(BUILD)/%.o) $(CUDA_SRC:%.cu=$(BUILD)/emu/%.o) \
               $(patsubst %,$(BUILD)/emu/tests/emu/%.o,cuda_emu runtime_emu cudnn_emu cublas_emu nccl_emu)
else
TRAINER_OBJ := $(TRAINER_SRC:%.c=$(BUILD)/%.o) $(CUDA_SRC:%.cu=$(BUILD)/%.cu.o)
endif
LIB         := $(BUILD)/libtrainer.a
HARNESS_SRC := $(wildcard harness/*.c lua/*.c)
HARNESS_OBJ := $(HARNESS_SRC:%.c=$(BUILD)/%.o)
RSA_BIN     := $(if $(filter cpu,$(VARIANT)),bin/rsa,$(BUILD)/rsa)

# tests/lua and tests/harness link the harness objects too (all but main.o)
HARNESS_LIB_OBJ := $(filter-out $(BUILD)/harness/main.o,$(HARNESS_OBJ))
# recorded in each run's provenance.txt
BUILD_FLAGS_RECORD := $(CC) $(CFLAGS)

# Every object and binary depends on the flags it was built with: a build directory is shared by MPI=0 and MPI=1
# (and CFLAGS=...), and an object left from the other setting links wrongly (MPI=0 after MPI=1: undefined MPI_*).
FLAGS_STAMP := $(BUILD)/build-flags
FLAGS_NOW   := $(CC) $(CFLAGS) | $(NVCC) $(NVCCFLAGS) $(NVCC_MPI) | $(LDFLAGS) $(LDLIBS) | $(CXX)
ifneq ($(file <$(FLAGS_STAMP)),$(FLAGS_NOW))
$(shell mkdir -p $(BUILD))
$(file >$(FLAGS_STAMP),$(FLAGS_NOW))
endif

TEST_SRC    := $(filter-out tests/emu/%,$(wildcard tests/*/test_*.c)) # tests/emu: the emulation's own rules
TEST_BIN    := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
TEST_UTIL   := $(BUILD)/tests/util/testlib.o $(BUILD)/tests/util/fixture.o $(BUILD)/tests/util/runcmp.o

.PHONY: all summary test bench deps clean cuda-check
all: summary $(RSA_BIN) $(LIB)

# ---- the cuda backend, emulated on the CPU (tests/emu/cuda_emu.h) ----
# A build without CUDA=1 that finds the CUDA headers compiles the cuda backend (trainer/ops/cuda and
# backend_cuda.cu) with the host C++ compiler, after tests/emu/unchevron.py rewrites its kernel launches, and links it
# with CPU emulations of the CUDA runtime, cuDNN's convolutions and cuBLAS's sgemm (tests/emu/*_emu.cpp) into
# copies of the GPU tests, of the PyTorch parity tests restricted to the cuda backend and of test_mpi, under
# tests/emu: so the backend's own code, kernels and host code, is tested on every machine. CUDA=emu builds everything
# that way, harness and trainer compiled as CUDA=1 compiles them: `make test CUDA=emu` is a GPU machine's CUDA
# build and suite run on the CPU (its provenance, settings and data-parallel code included), too slow for CI.
HAVE_CUDA_HEADERS := $(shell test -f $(CUDA_HOME)/include/cuda_runtime.h -a -f $(CUDA_HOME)/include/cublas_v2.h \
                       -a -f $(CUDNN_HOME)/include/cudnn.h && command -v $(CXX) >/dev/null \
                       && command -v python3 >/dev/null && echo 1)
EMU_MISSING := not built (needs the CUDA headers, g++ and python3)
EMU_STATE  := $(strip $(if $(filter 1,$(CUDA)),not needed (CUDA=1),\
                $(if $(filter emu,$(CUDA)),the whole build (CUDA=emu),\
                $(if $(HAVE_CUDA_HEADERS),tested by make test,$(EMU_MISSING)))))
ifeq ($(CUDA)$(HAVE_CUDA_HEADERS),emu)
$(error CUDA=emu: the emulation is $(EMU_MISSING))
endif
ifneq ($(filter 01 emu1,$(CUDA)$(HAVE_CUDA_HEADERS)),)
EMU_DIR    := $(BUILD)/emu
EMU_CU     := $(wildcard trainer/ops/cuda/*.cu) trainer/backend/backend_cuda.cu
EMU_GEN_H  := $(patsubst %,$(EMU_DIR)/%,$(shell grep -l '<<<' trainer/ops/cuda/*.h))
EMU_OBJ    := $(EMU_CU:%.cu=$(EMU_DIR)/%.o) \
              $(patsubst %,$(EMU_DIR)/tests/emu/%.o,cuda_emu runtime_emu cudnn_emu cublas_emu)
EMU_TESTS  := gpu/test_cuda gpu/test_cuda_model ops/test_ops_torch nn/test_resnet_torch train/test_step_torch
ifeq ($(CUDA),emu) # the build's own tests are the emulated ones (and test_cuda_run, by the usual rule)
EMU_TESTS  :=
else ifeq ($(SAN),1) # ASan's memory checks of the kernels need their own tests' shapes, not the numerics of the others
EMU_TESTS  := gpu/test_cuda gpu/test_cuda_model
endif
EMU_BIN    := $(foreach t,$(EMU_TESTS),$(BUILD)/tests/emu/$(notdir $(t))) $(BUILD)/tests/emu/test_emulator \
              $(BUILD)/tests/emu/test_cuda_kernels \
              $(if $(filter 1,$(SAN)),,$(BUILD)/tests/emu/test_gpu_session $(BUILD)/tests/emu/test_cuda_run)
ifeq ($(CUDA),emu)
EMU_BIN    := $(BUILD)/tests/emu/test_cuda_run
endif
EMU_INC    := -I$(CUDA_HOME)/include $(if $(filter-out $(CUDA_HOME),$(CUDNN_HOME)),-I$(CUDNN_HOME)/include)
# -ffp-contract=off: the kernels' __fadd_rn and __fmul_rn are never fused; nvcc does not warn about signedness or
# shadowing (cuda_fp16.h's `half`) in device code, which the kernels were written for; grids of at most 3 blocks
# (grid-stride launches) and 2 matrices (transposes), so that the tests' small tensors take the loops that cover what
# one grid does not (on a GPU, tensors of over 2 M values or 65535 matrices)
EMU_SAN    := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
EMU_CXXFLAGS := -O2 -g -std=c++17 -ffp-contract=off $(WARN) -Wno-sign-compare -Wno-shadow -D_GNU_SOURCE -MMD -MP \
                -DRSA_CUDA_MAX_BLOCKS=3 -DRSA_CUDA_MAX_GRID_Z=2 -I. $(EMU_INC) $(if $(filter 1,$(SAN)),$(EMU_SAN))
ifeq ($(CUDA),emu)
EMU_CXXFLAGS += -DRSA_CUDA $(if $(filter-out $(CUDA_HOME),$(NCCL_HOME)),-I$(NCCL_HOME)/include)
ifeq ($(MPI),1)
$(EMU_DIR)/trainer/dist/dist_nccl.o $(EMU_DIR)/tests/emu/nccl_emu.o: EMU_CXXFLAGS += -DRSA_MPI -Itrainer/dist \
                                                                      $(shell pkg-config --cflags ompi-c)
endif
endif
# NCCL over MPI (tests/emu/nccl_emu.cpp) under dist_nccl.cu: the cuda backend's data-parallel path under mpirun
# (not under SAN: its kernels' accesses are test_cuda's, and two ranks under ASan take minutes)
ifeq ($(CUDA)$(MPI)$(HAVE_NCCL)$(SAN),0110)
EMU_NCCL_OBJ := $(EMU_DIR)/trainer/dist/dist_nccl.o $(EMU_DIR)/tests/emu/nccl_emu.o
EMU_BIN    += $(BUILD)/tests/emu/test_mpi
EMU_INC    += $(if $(filter-out $(CUDA_HOME),$(NCCL_HOME)),-I$(NCCL_HOME)/include)
$(EMU_NCCL_OBJ): EMU_CXXFLAGS += -DRSA_MPI -Itrainer/dist $(shell pkg-config --cflags ompi-c) \
                                $(if $(filter-out $(CUDA_HOME),$(NCCL_HOME)),-I$(NCCL_HOME)/include)
endif
TEST_BIN   += $(EMU_BIN)
# kept: the objects depend on the rewritten headers
.SECONDARY: $(EMU_GEN_H) $(EMU_CU:%.cu=$(EMU_DIR)/%.cpp) $(EMU_DIR)/tests/emu/test_emulator.cpp \
            $(EMU_DIR)/trainer/dist/dist_nccl.cpp

$(EMU_DIR)/%.cpp: %.cu tests/emu/unchevron.py
	@mkdir -p $(dir $@)
	python3 tests/emu/unchevron.py $< $@

$(EMU_DIR)/%.h: %.h tests/emu/unchevron.py
	@mkdir -p $(dir $@)
	python3 tests/emu/unchevron.py $< $@

# a kernel file's own folder first: its rewritten headers (channel_reduce.h) before trainer/ops/cuda's
$(EMU_DIR)/trainer/%.o: $(EMU_DIR)/trainer/%.cpp $(EMU_GEN_H) tests/emu/cuda_emu.h $(FLAGS_STAMP)
	$(CXX) $(EMU_CXXFLAGS) -Itrainer/ops/cuda -Itrainer/backend -include tests/emu/cuda_emu.h -c $< -o $@

# the emulated convolutions and sgemm are the emulated tests' heaviest arithmetic: -O3 vectorises their inner loops
# (elementwise, so no sum is reordered), and OpenMP shares their outputs among threads (each output one thread's)
$(EMU_DIR)/tests/emu/cudnn_emu.o $(EMU_DIR)/tests/emu/cublas_emu.o: EMU_CXXFLAGS += -O3 -fopenmp

$(EMU_DIR)/tests/emu/%.o: tests/emu/%.cpp tests/emu/cuda_emu.h $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	$(CXX) $(EMU_CXXFLAGS) -include tests/emu/cuda_emu.h -c $< -o $@

# the emulator's own test: kernels written for it (tests/emu/test_emulator.cu), rewritten like the trainer's
$(EMU_DIR)/tests/emu/test_emulator.o: $(EMU_DIR)/tests/emu/test_emulator.cpp tests/emu/cuda_emu.h $(FLAGS_STAMP)
	$(CXX) $(EMU_CXXFLAGS) -include tests/emu/cuda_emu.h -c $< -o $@

$(BUILD)/tests/emu/test_emulator: $(EMU_DIR)/tests/emu/test_emulator.o $(EMU_DIR)/tests/emu/cuda_emu.o $(TEST_UTIL) \
                                  $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) $^ $(LDLIBS) -lstdc++ -o $@

# the kernels around the cuDNN and cuBLAS calls (transposes, biases), on shapes of their own
$(BUILD)/tests/emu/test_cuda_kernels: $(EMU_DIR)/tests/emu/test_cuda_kernels.o $(EMU_OBJ) $(TEST_UTIL) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) $^ $(LDLIBS) -lstdc++ -o $@

# the GPU session's benchmarks (bench/gpu_session.sh) on the emulated backend: step_bench with its cuda branches
$(BUILD)/tests/emu/step_bench: bench/step_bench.c $(EMU_OBJ) $(LIB) $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -DRSA_CUDA $(EMU_INC) $(LDFLAGS) $< $(EMU_OBJ) $(LIB) $(LDLIBS) -lstdc++ -o $@

$(BUILD)/tests/emu/test_gpu_session: tests/emu/test_gpu_session.c $(TEST_UTIL) $(LIB) $(FLAGS_STAMP) \
                                     $(BUILD)/tests/emu/step_bench
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) $< $(TEST_UTIL) $(LIB) $(LDLIBS) -o $@

define EMU_TEST_RULE
$(BUILD)/tests/emu/$(notdir $(1)): tests/$(1).c $(TEST_UTIL) $(2) $(LIB) $(FLAGS_STAMP)
	@mkdir -p $$(dir $$@)
	$$(CC) $$(CFLAGS) -DRSA_CUDA_EMU $(EMU_INC) $$(LDFLAGS) $$< $(TEST_UTIL) $(2) $(LIB) $$(LDLIBS) -lstdc++ -o $$@
endef
$(foreach t,$(EMU_TESTS),$(eval $(call EMU_TEST_RULE,$(t),$(EMU_OBJ))))
# whole runs on the emulated backend: a test of tests/emu's own, built as the copies are
$(if $(filter emu,$(CUDA)),,$(eval $(call EMU_TEST_RULE,emu/test_cuda_run,$(EMU_OBJ))))
$(if $(EMU_NCCL_OBJ),$(eval $(call EMU_TEST_RULE,dist/test_mpi,$(EMU_OBJ) $(EMU_NCCL_OBJ))))
endif

summary:
	@echo "rsa-repro build ($(VARIANT)):"
	@echo "  oneDNN   $(if $(HAVE_DNNL),found,MISSING (required: make deps))"
	@echo "  OpenBLAS $(if $(HAVE_BLAS),found (unused: oneDNN's sgemm is used for matmul),not found (not needed))"
	@echo "  Lua 5.4  $(if $(HAVE_LUA),found,MISSING (required: make deps))"
	@echo "  libjpeg-turbo $(if $(HAVE_JPEG),found,not found)"
	@echo "  Open MPI $(if $(HAVE_MPI),found$(if $(filter 1,$(MPI)), - data parallel over MPI enabled, - not used (MPI=0)),not found)"
	@echo "  CUDA     $(if $(HAVE_NVCC),found ($(NVCC))$(if $(filter 1,$(CUDA)), - building the cuda backend,$(if $(filter emu,$(CUDA)), - not used: emulated (CUDA=emu), - not built: make CUDA=1)),not found)"
	@echo "  cuDNN    $(if $(HAVE_CUDNN),found,not found)   NCCL $(if $(HAVE_NCCL),found,not found)"
	@echo "  the cuda backend on the CPU (tests/emu): $(EMU_STATE)"
ifneq ($(HAVE_DNNL),1)
	@echo "error: oneDNN headers not found (hint: run 'make deps' as root)"; exit 1
endif

$(BUILD)/%.o: %.c $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/%.cu.o: %.cu $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS) $(NVCC_MPI) -c $< -o $@

$(LIB): $(TRAINER_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(RSA_BIN): $(HARNESS_OBJ) $(LIB) $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) $(HARNESS_OBJ) $(LIB) $(LDLIBS) -o $@

$(BUILD)/harness/provenance.o: CFLAGS += -DRSA_BUILD_CFLAGS='"$(BUILD_FLAGS_RECORD)"'
# the hints rsa prints name this build's program and make variables (harness.h)
$(HARNESS_OBJ): CFLAGS += -DRSA_PROGRAM='"$(RSA_BIN)"' -DRSA_MAKE_VARIANT='"$(if $(filter-out 0,$(CUDA)),CUDA=$(CUDA))"'

$(BUILD)/tests/lua/%: tests/lua/%.c $(TEST_UTIL) $(HARNESS_LIB_OBJ) $(LIB) $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) $< $(TEST_UTIL) $(HARNESS_LIB_OBJ) $(LIB) $(LDLIBS) -o $@

$(BUILD)/tests/harness/%: tests/harness/%.c $(TEST_UTIL) $(HARNESS_LIB_OBJ) $(LIB) $(RSA_BIN) $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) $< $(TEST_UTIL) $(HARNESS_LIB_OBJ) $(LIB) $(LDLIBS) -o $@

$(BUILD)/tests/%: tests/%.c $(TEST_UTIL) $(LIB) $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) $< $(TEST_UTIL) $(LIB) $(LDLIBS) -o $@

$(BUILD)/tests/util/%.o: tests/util/%.c $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/bench/%: bench/%.c $(LIB) $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) $< $(LIB) $(LDLIBS) -o $@

tests-build: $(TEST_BIN) $(RSA_BIN)

# SAN=1 reuses the plain variant's generated PyTorch fixtures (the same data) instead of generating its own, and
# suppresses Open MPI's process-lifetime allocations (tests/reliability/lsan.supp says why)
SAN_ENV := RSA_FIXTURES=$${RSA_FIXTURES:-build/$(VARIANT:%-san=%)/fixtures} \
           ASAN_OPTIONS=$${ASAN_OPTIONS:-fast_unwind_on_malloc=0} \
           LSAN_OPTIONS=$${LSAN_OPTIONS:-suppressions=$(CURDIR)/tests/reliability/lsan.supp:print_suppressions=0}
# The variables that chose this build, for the tests' own make calls (test_harness: `make reproduce-table1`), so that
# they run this build's rsa, not the default build's (a CUDA build's runs are on the cuda backend: other run ids).
# Not SAN: its reproduce target runs the plain build's rsa, which the sanitizers would only slow.
TEST_MAKE_VARS := CUDA=$(CUDA) MPI=$(MPI) $(if $(DEPS_ROOT),DEPS_ROOT=$(DEPS_ROOT)) \
                  $(if $(filter-out /usr/local/cuda,$(CUDA_HOME)),CUDA_HOME=$(CUDA_HOME)) \
                  $(if $(filter-out $(CUDA_HOME),$(CUDNN_HOME)),CUDNN_HOME=$(CUDNN_HOME)) \
                  $(if $(filter-out $(CUDA_HOME),$(NCCL_HOME)),NCCL_HOME=$(NCCL_HOME))
TEST_ENV := BUILD=$(BUILD) RSA_BIN=$(RSA_BIN) RSA_MAKE_VARS="$(strip $(TEST_MAKE_VARS))" \
            $(if $(filter 1,$(SAN)),$(SAN_ENV))
test: summary tests-build
	@$(TEST_ENV) tests/run.sh

# Only the emulated GPU tests (tests/emu): a quick check after editing a .cu file, on a machine without a GPU.
.PHONY: test-emu
test-emu:
ifneq ($(EMU_DIR),)
	@$(MAKE) --no-print-directory $(EMU_BIN) $(RSA_BIN)
	@$(TEST_ENV) \
	  RSA_TEST_ONLY="$(EMU_BIN:$(BUILD)/tests/%=%)" tests/run.sh
else
	@echo "test-emu: the cuda backend on the CPU is $(EMU_STATE)"; exit 1
endif

# The GPU tests: the CUDA build's GPU tests, and the PyTorch parity tests of ops, ResNets and whole steps restricted
# to the cuda backend. Without a GPU it builds them, says so and runs nothing (exit 0: nothing failed, nothing passed).
GPU_TESTS := gpu/test_cuda gpu/test_cuda_model ops/test_ops_torch nn/test_resnet_torch train/test_step_torch
.PHONY: test-gpu
test-gpu:
	@$(MAKE) --no-print-directory CUDA=1 tests-build
	@if ! nvidia-smi -L >/dev/null 2>&1; then \
	  echo "test-gpu: NO GPU on this machine (nvidia-smi lists none): the GPU tests were built, none ran"; exit 0; fi; \
	  BUILD=build/cuda RSA_BIN=build/cuda/rsa RSA_TEST_BACKENDS=cuda RSA_TEST_ONLY="$(GPU_TESTS)" tests/run.sh

bench: all
	@BUILD=$(BUILD) bench/run.sh

deps:
	@if [ "$$(id -u)" != 0 ]; then \
	  echo "make deps installs Debian packages and needs root. Run as root:"; \
	  echo "  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y $(PKGS_BUILD) $(PKGS_TEST)"; \
	  exit 1; fi
	@missing=$$(for p in $(PKGS_BUILD) $(PKGS_TEST); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || echo $$p; done); \
	if [ -z "$$missing" ]; then echo "all packages present"; else \
	  echo "installing: $$missing"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; fi

# ---- reproducing the paper: one target per table and figure ----
# SCALE: auto (default: the paper's protocol when its data sets are under data/, else the quick scale on the
# Fashion-MNIST stand-in, announced loudly and labelled in the report), paper, quick or smoke. SEEDS: seeds per cell
# (default: the paper's). RSA_FLAGS: more `rsa run` options (--threads N, --data DIR, --results DIR, --only PATTERN).
SCALE ?= auto
SEEDS ?=
RSA_FLAGS ?=
REPRO_FLAGS = --scale $(SCALE) $(if $(SEEDS),--seeds $(SEEDS)) $(RSA_FLAGS)
REPRO_TABLES := table1 table2 table3 table4 table5 table6 table7
.PHONY: repro-build report reproduce-all reproduce-fig3 reproduce-precision $(REPRO_TABLES:%=reproduce-%)

# builds first; as root, installs the missing build packages (make deps installs the test packages too)
repro-build:
	@if [ "$$(id -u)" = 0 ]; then \
	  missing=$$(for p in $(PKGS_BUILD); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || echo $$p; done); \
	  if [ -n "$$missing" ]; then echo "installing: $$missing"; apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; fi; fi
	@$(MAKE) --no-print-directory -s all

$(REPRO_TABLES:%=reproduce-%): reproduce-%: repro-build
	$(RSA_BIN) run experiments/$*.lua $(REPRO_FLAGS)

reproduce-fig3: repro-build
	$(RSA_BIN) run experiments/fig3_beta.lua $(REPRO_FLAGS)

reproduce-all: $(REPRO_TABLES:%=reproduce-%) reproduce-fig3

# not a table of the paper: pretraining in fp32, bf16 and fp16 side by side (experiments/precision.lua)
reproduce-precision: repro-build
	$(RSA_BIN) run experiments/precision.lua $(REPRO_FLAGS)

report: repro-build
	$(RSA_BIN) report $(RSA_FLAGS)

# ---- reliability (tests/reliability; the fast parts run in `make test`) ----
# test-slow: the reliability tests with their slow parts (killer seeds 5-20, BYOL, 3 and 4 compute threads), the
# fuzzers' regression inputs (clang) and the Valgrind smoke run. .ci/run runs it.
RELIABILITY_BIN := $(patsubst tests/%.c,$(BUILD)/tests/%,$(wildcard tests/reliability/test_*.c))
VALGRIND       ?= valgrind
VALGRIND_FLAGS := --error-exitcode=99 --leak-check=full --show-leak-kinds=definite,possible \
                  --errors-for-leak-kinds=definite --num-callers=40 --suppressions=tests/reliability/valgrind.supp
.PHONY: test-slow test-reliability-slow valgrind

test-reliability-slow: $(RELIABILITY_BIN)
	@mkdir -p $(BUILD)/tmp; fail=0; for t in $(RELIABILITY_BIN); do echo "== $${t#$(BUILD)/tests/} (RSA_TEST_SLOW=1)"; \
	  RSA_TEST_SLOW=1 RSA_TEST_TMP=$(BUILD)/tmp $$t || fail=1; done; test $$fail = 0

# A short training run (tests/reliability/smoke.c) under Memcheck; third-party noise is suppressed in
# tests/reliability/valgrind.supp (each entry says why).
valgrind: $(BUILD)/tests/reliability/smoke
	OMP_NUM_THREADS=2 $(VALGRIND) $(VALGRIND_FLAGS) --log-file=$(BUILD)/valgrind.log \
	  $(BUILD)/tests/reliability/smoke $(BUILD)/valgrind-smoke \
	  && echo "valgrind: clean ($$(grep -h 'ERROR SUMMARY' $(BUILD)/valgrind.log))" \
	  || { grep -v '^==[0-9]*== *$$' $(BUILD)/valgrind.log | tail -60; \
	       echo "valgrind: errors (log: $(BUILD)/valgrind.log)"; exit 1; }

test-slow: test-reliability-slow fuzz-regress valgrind

# ---- fuzzing (tests/fuzz): libFuzzer targets for every parser of outside bytes, built with clang + ASan/UBSan ----
# `make fuzz` runs each target for FUZZ_SECONDS (default 600) from its seed corpus (tests/fuzz/corpus/<target>) and
# its past findings (tests/fuzz/regressions/<target>); new inputs go to build/fuzz/corpus, crashes to
# build/fuzz/findings. `make -j2 fuzz` runs two at a time. `make fuzz-regress` replays the seeds and the regressions
# once (seconds; CI runs it). `make fuzz-seeds` rewrites the seed corpora (tests/fuzz/make_seeds.c).
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 600
FUZZ_BUILD   := build/fuzz
FUZZ_TARGETS := $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_CFLAGS  := -O1 -g -std=c11 -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter -Wno-unknown-pragmas -MMD -MP \
                -D_GNU_SOURCE -I. -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_OBJ     := $(patsubst %.c,$(FUZZ_BUILD)/%.o,$(filter-out $(wildcard trainer/*/*_cuda.c trainer/*/*/*_cuda.c),\
                  $(wildcard trainer/*/*.c trainer/*/*/*.c)))
FUZZ_LIBS    := -ldnnl -lturbojpeg -lz -lm -lpthread
FUZZ_OPTS    := -timeout=30 -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1
.PHONY: fuzz fuzz-build fuzz-regress fuzz-seeds $(FUZZ_TARGETS:%=fuzz-run-%)

$(FUZZ_BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@

$(FUZZ_BUILD)/libtrainer.a: $(FUZZ_OBJ)
	rm -f $@ && ar rcs $@ $^

$(FUZZ_BUILD)/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz.h tests/fuzz/fuzz_model.h $(FUZZ_BUILD)/libtrainer.a
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer $< $(FUZZ_BUILD)/libtrainer.a $(FUZZ_LIBS) -o $@

# the Lua bridge links the embedding (lua/*.c) and Debian's liblua5.4 (not instrumented: coverage is ours only)
FUZZ_LUA_OBJ := $(patsubst %.c,$(FUZZ_BUILD)/%.o,$(wildcard lua/*.c))
$(FUZZ_LUA_OBJ): FUZZ_CFLAGS += -I/usr/include/lua5.4
$(FUZZ_BUILD)/fuzz_lua: tests/fuzz/fuzz_lua.c tests/fuzz/fuzz.h $(FUZZ_LUA_OBJ) $(FUZZ_BUILD)/libtrainer.a
	$(FUZZ_CC) $(FUZZ_CFLAGS) -I/usr/include/lua5.4 -fsanitize=fuzzer $< $(FUZZ_LUA_OBJ) $(FUZZ_BUILD)/libtrainer.a \
	  $(FUZZ_LIBS) -llua5.4 -o $@

fuzz-build: $(FUZZ_TARGETS:%=$(FUZZ_BUILD)/fuzz_%)

$(FUZZ_TARGETS:%=fuzz-run-%): fuzz-run-%: $(FUZZ_BUILD)/fuzz_%
	@mkdir -p $(FUZZ_BUILD)/corpus/$* $(FUZZ_BUILD)/findings/$* tests/fuzz/regressions/$*
	$(FUZZ_BUILD)/fuzz_$* $(FUZZ_OPTS) -max_total_time=$(FUZZ_SECONDS) \
	  $(if $(wildcard tests/fuzz/$*.dict),-dict=tests/fuzz/$*.dict) \
	  -artifact_prefix=$(FUZZ_BUILD)/findings/$*/ $(FUZZ_BUILD)/corpus/$* tests/fuzz/corpus/$* tests/fuzz/regressions/$* \
	  >$(FUZZ_BUILD)/$*.log 2>&1; rc=$$?; \
	  grep -E '^(#[0-9]+[[:space:]]+(INITED|DONE)|==[0-9]+==ERROR|SUMMARY|stat::number_of_executed_units)' \
	    $(FUZZ_BUILD)/$*.log | sed 's/^/$*: /'; \
	  test $$rc = 0 || { echo "fuzz $*: FINDING (log: $(FUZZ_BUILD)/$*.log, input in $(FUZZ_BUILD)/findings/$*)"; exit 1; }

fuzz: $(FUZZ_TARGETS:%=fuzz-run-%)

fuzz-regress: fuzz-build
	@for t in $(FUZZ_TARGETS); do \
	  files=$$(find tests/fuzz/corpus/$$t tests/fuzz/regressions/$$t -type f 2>/dev/null); \
	  $(FUZZ_BUILD)/fuzz_$$t $$files >$(FUZZ_BUILD)/$$t-regress.log 2>&1 \
	    && echo "ok fuzz-regress $$t ($$(echo $$files | wc -w) inputs)" \
	    || { echo "FAIL fuzz-regress $$t: see $(FUZZ_BUILD)/$$t-regress.log"; exit 1; }; done

fuzz-seeds: $(BUILD)/tests/fuzz/make_seeds
	$(BUILD)/tests/fuzz/make_seeds tests/fuzz/corpus

$(BUILD)/tests/fuzz/make_seeds: tests/fuzz/make_seeds.c tests/fuzz/fuzz_model.h $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) $< $(LIB) $(LDLIBS) -o $@

clean:
	rm -rf build bin

-include $(shell find build -name '*.d' 2>/dev/null)
