# rsa-repro build. `make` builds bin/rsa and build/cpu/libtrainer.a; `make test` runs every test; `make deps`
# installs the Debian packages (as root). Variants: CUDA=1 (cuDNN/cuBLAS/NCCL backend), SAN=1 (ASan + UBSan).

CC      ?= gcc
NVCC    ?= /usr/local/cuda/bin/nvcc
CUDA_HOME ?= /usr/local/cuda
CUDA    ?= 0
SAN     ?= 0

VARIANT := cpu
ifeq ($(CUDA),1)
VARIANT := cuda
endif
ifeq ($(SAN),1)
VARIANT := $(VARIANT)-san
endif
BUILD := build/$(VARIANT)

# ---- dependencies (Debian packages; see `make deps`) ----
PKGS_BUILD := gcc make pkg-config liblua5.4-dev lua5.4 libturbojpeg0-dev libjpeg62-turbo-dev zlib1g-dev \
              libopenblas-dev libdnnl-dev libopenmpi-dev openmpi-bin gnuplot-nox dataset-fashion-mnist
PKGS_TEST  := python3-torch python3-torchvision python3-numpy python3-pil clang libclang-rt-14-dev valgrind \
              mate-backgrounds

HAVE_DNNL := $(shell test -f /usr/include/oneapi/dnnl/dnnl.h && echo 1)
HAVE_LUA  := $(shell pkg-config --exists lua5.4 2>/dev/null && echo 1)
HAVE_JPEG := $(shell pkg-config --exists libturbojpeg 2>/dev/null && echo 1)
HAVE_BLAS := $(shell pkg-config --exists openblas 2>/dev/null && echo 1)
HAVE_MPI  := $(shell pkg-config --exists ompi-c 2>/dev/null && echo 1)
HAVE_NVCC := $(shell test -x $(NVCC) && echo 1)
HAVE_CUDNN := $(shell test -f $(CUDA_HOME)/include/cudnn.h && echo 1)
HAVE_NCCL := $(shell test -f $(CUDA_HOME)/include/nccl.h -o -f /usr/include/nccl.h && echo 1)

WARN    := -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter -Wno-format-truncation
CFLAGS  ?= -O3 -g
CFLAGS  += -std=c11 $(WARN) -fopenmp -D_GNU_SOURCE -MMD -MP -I.
LDLIBS  := -ldnnl -lm -lpthread
ifeq ($(HAVE_LUA),1)
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
CFLAGS      += -DRSA_CUDA -I$(CUDA_HOME)/include
NVCCFLAGS   := -O3 -g -std=c++17 -I. -DRSA_CUDA -MMD -MP --compiler-options -Wall,-Wextra,-Werror,-Wno-unused-parameter \
               -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90 \
               -gencode arch=compute_90,code=compute_90
LDLIBS      += -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcudnn -lcublas -lnccl -lcudart -lstdc++
else
TRAINER_SRC := $(filter-out $(wildcard trainer/*/*_cuda.c trainer/*/*/*_cuda.c),$(TRAINER_SRC))
CUDA_SRC    :=
endif

TRAINER_OBJ := $(TRAINER_SRC:%.c=$(BUILD)/%.o) $(CUDA_SRC:%.cu=$(BUILD)/%.cu.o)
LIB         := $(BUILD)/libtrainer.a
HARNESS_SRC := $(wildcard harness/*.c lua/*.c)
HARNESS_OBJ := $(HARNESS_SRC:%.c=$(BUILD)/%.o)
RSA_BIN     := $(if $(filter cpu,$(VARIANT)),bin/rsa,$(BUILD)/rsa)

# tests/lua and tests/harness link the harness objects too (all but main.o)
HARNESS_LIB_OBJ := $(filter-out $(BUILD)/harness/main.o,$(HARNESS_OBJ))
# recorded in each run's provenance.txt
BUILD_FLAGS_RECORD := $(CC) $(CFLAGS)

TEST_SRC    := $(wildcard tests/*/test_*.c)
TEST_BIN    := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
TEST_UTIL   := $(BUILD)/tests/util/testlib.o $(BUILD)/tests/util/fixture.o

.PHONY: all summary test bench deps clean cuda-check
all: summary $(RSA_BIN) $(LIB)

summary:
	@echo "rsa-repro build ($(VARIANT)):"
	@echo "  oneDNN   $(if $(HAVE_DNNL),found,MISSING (required: make deps))"
	@echo "  OpenBLAS $(if $(HAVE_BLAS),found (unused: oneDNN's sgemm is used for matmul),not found (not needed))"
	@echo "  Lua 5.4  $(if $(HAVE_LUA),found,MISSING (required: make deps))"
	@echo "  libjpeg-turbo $(if $(HAVE_JPEG),found,not found)"
	@echo "  Open MPI $(if $(HAVE_MPI),found$(if $(filter 1,$(MPI)), - data parallel over MPI enabled, - not used (MPI=0)),not found)"
	@echo "  CUDA     $(if $(HAVE_NVCC),found ($(NVCC))$(if $(filter 1,$(CUDA)), - building the cuda backend, - not built: make CUDA=1),not found)"
	@echo "  cuDNN    $(if $(HAVE_CUDNN),found,not found)   NCCL $(if $(HAVE_NCCL),found,not found)"
ifneq ($(HAVE_DNNL),1)
	@echo "error: oneDNN headers not found (hint: run 'make deps' as root)"; exit 1
endif

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/%.cu.o: %.cu
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS) $(NVCC_MPI) -c $< -o $@

$(LIB): $(TRAINER_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(RSA_BIN): $(HARNESS_OBJ) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) $(HARNESS_OBJ) $(LIB) $(LDLIBS) -o $@

$(BUILD)/harness/provenance.o: CFLAGS += -DRSA_BUILD_CFLAGS='"$(BUILD_FLAGS_RECORD)"'

$(BUILD)/tests/lua/%: tests/lua/%.c $(TEST_UTIL) $(HARNESS_LIB_OBJ) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) $< $(TEST_UTIL) $(HARNESS_LIB_OBJ) $(LIB) $(LDLIBS) -o $@

$(BUILD)/tests/harness/%: tests/harness/%.c $(TEST_UTIL) $(HARNESS_LIB_OBJ) $(LIB) $(RSA_BIN)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) $< $(TEST_UTIL) $(HARNESS_LIB_OBJ) $(LIB) $(LDLIBS) -o $@

$(BUILD)/tests/%: tests/%.c $(TEST_UTIL) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) $< $(TEST_UTIL) $(LIB) $(LDLIBS) -o $@

$(BUILD)/tests/util/%.o: tests/util/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/bench/%: bench/%.c $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) $< $(LIB) $(LDLIBS) -o $@

tests-build: $(TEST_BIN) $(RSA_BIN)

test: summary tests-build
	@BUILD=$(BUILD) RSA_BIN=$(RSA_BIN) tests/run.sh

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
.PHONY: repro-build report reproduce-all reproduce-fig3 $(REPRO_TABLES:%=reproduce-%)

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

report: repro-build
	$(RSA_BIN) report $(RSA_FLAGS)

clean:
	rm -rf build bin

-include $(shell find build -name '*.d' 2>/dev/null)
