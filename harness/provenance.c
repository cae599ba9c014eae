#include "provenance.h"

#include "harness.h"

#include "lua/lua_exp.h"
#include "lua/sha256.h"
#include "trainer/backend/backend.h"
#include "trainer/core/error.h"
#include "trainer/core/fileio.h"
#include "trainer/data/data.h"
#include "trainer/ops/cpu/conv_cpu.h"
#include "trainer/train/trainer.h"
#include "util.h"

#include <oneapi/dnnl/dnnl.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#if defined(__has_include)
#if __has_include(<jconfig.h>)
#include <jconfig.h>
#endif
#endif
#ifdef RSA_CUDA
#include "trainer/ops/cuda/cuda_backend.h"
#include <cuda_runtime_api.h>
#include <cudnn.h>
#include <nccl.h>
#endif

#ifndef RSA_BUILD_CFLAGS
#define RSA_BUILD_CFLAGS "unknown"
#endif
#define STR2(x) #x
#define STR(x) STR2(x)

static const char *FASHION_DEBIAN = "/usr/share/datasets/fashion-mnist";

const char *config_data_root(const TrainConfig *c) {
    if (c && c->data_root[0]) return c->data_root;
    const char *env = getenv("RSA_DATA");
    return env && env[0] ? env : "data";
}

/* The files (and folders, ending in '/') a data set reads, relative to the root; NULL-terminated. */
static const char *const *dataset_paths(const char *name) {
    static const char *const cifar10[] = {"cifar-10-batches-bin/data_batch_1.bin", "cifar-10-batches-bin/data_batch_2.bin",
                                          "cifar-10-batches-bin/data_batch_3.bin", "cifar-10-batches-bin/data_batch_4.bin",
                                          "cifar-10-batches-bin/data_batch_5.bin", "cifar-10-batches-bin/test_batch.bin",
                                          NULL};
    static const char *const cifar100[] = {"cifar-100-binary/train.bin", "cifar-100-binary/test.bin", NULL};
    static const char *const stl10[] = {"stl10_binary/train_X.bin", "stl10_binary/train_y.bin",
                                        "stl10_binary/test_X.bin",  "stl10_binary/test_y.bin",
                                        "stl10_binary/unlabeled_X.bin", NULL};
    static const char *const tiny[] = {"tiny-imagenet-200/wnids.txt", "tiny-imagenet-200/val/val_annotations.txt",
                                       "tiny-imagenet-200/train/", "tiny-imagenet-200/val/images/", NULL};
    static const char *const imagenet[] = {"imagenet/train/", "imagenet/val/", NULL};
    static const char *const fashion[] = {"fashion-mnist/train-images-idx3-ubyte.gz",
                                          "fashion-mnist/train-labels-idx1-ubyte.gz",
                                          "fashion-mnist/t10k-images-idx3-ubyte.gz",
                                          "fashion-mnist/t10k-labels-idx1-ubyte.gz", NULL};
    if (strcmp(name, "cifar10") == 0) return cifar10;
    if (strcmp(name, "cifar100") == 0) return cifar100;
    if (strcmp(name, "stl10") == 0) return stl10;
    if (strcmp(name, "tinyimagenet") == 0) return tiny;
    if (strcmp(name, "imagenet") == 0 || strcmp(name, "imagenet100") == 0) return imagenet;
    if (strcmp(name, "fashionmnist") == 0) return fashion;
    return NULL;
}

/* Full path of relative path rel for data set name under root (Fashion-MNIST falls back to Debian's copy). */
static char *data_file(const char *name, const char *root, const char *rel) {
    char *p = xasprintf("%s/%s", root, rel);
    if (strcmp(name, "fashionmnist") == 0 && !file_exists(p)) {
        char *alt = xasprintf("%s/%s", FASHION_DEBIAN, rel + strlen("fashion-mnist/"));
        if (file_exists(alt)) {
            free(p);
            return alt;
        }
        free(alt);
    }
    return p;
}

bool dataset_present(const char *name, const char *root, char **missing) {
    const char *const *paths = dataset_paths(name);
    if (!paths) return false;
    for (int i = 0; paths[i]; i++) {
        char *p = data_file(name, root, paths[i]);
        size_t n = strlen(p);
        bool ok = p[n - 1] == '/' ? dir_exists(p) : file_exists(p);
        if (!ok) {
            if (missing) *missing = p;
            else free(p);
            return false;
        }
        free(p);
    }
    return true;
}

/* ---- checksums ---- */

static int file_sha256(const char *path, char out[65]) {
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    Sha256 s;
    sha256_init(&s);
    static unsigned char buf[1 << 20];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) sha256_update(&s, buf, n);
    bool err = ferror(f);
    fclose(f);
    if (err) return -1;
    sha256_hex_final(&s, out);
    return 0;
}

/* SHA-256 of a file, through the cache (path, size, mtime -> digest). */
static void cached_sha256(const char *cache_dir, const char *path, const struct stat *st, char out[65]) {
    char *cache_path = xasprintf("%s/checksums.tsv", cache_dir);
    char *text = slurp(cache_path);
    char *key = xasprintf("%s\t%lld\t%lld\t", path, (long long)st->st_size, (long long)st->st_mtime);
    char *hit = text ? strstr(text, key) : NULL;
    if (hit && (hit == text || hit[-1] == '\n') && strlen(hit + strlen(key)) >= 64) {
        memcpy(out, hit + strlen(key), 64);
        out[64] = 0;
    } else if (file_sha256(path, out) == 0) {
        char *line = xasprintf("%s%s%s\n", text ? text : "", key, out);
        if (make_dirs(cache_dir) == 0) atomic_write_text(cache_path, line); /* a cache: failure only costs time */
        free(line);
    } else {
        snprintf(out, 65, "unreadable");
    }
    free(key), free(text), free(cache_path);
}

/* Adds "relpath size mtime" lines of every file under dir (sorted) to the hash; counts files. */
static void hash_tree(Sha256 *s, const char *dir, const char *rel, long long *files) {
    size_t n;
    char **names = list_dir(dir, NULL, &n);
    if (!names) return;
    for (size_t i = 0; i < n; i++) {
        char *full = xasprintf("%s/%s", dir, names[i]);
        char *r = xasprintf("%s%s%s", rel, rel[0] ? "/" : "", names[i]);
        struct stat st;
        if (stat(full, &st) == 0) {
            if (S_ISDIR(st.st_mode)) {
                hash_tree(s, full, r, files);
            } else {
                char line[4200];
                int len = snprintf(line, sizeof line, "%s\t%lld\t%lld\n", r, (long long)st.st_size,
                                   (long long)st.st_mtime);
                sha256_update(s, line, (size_t)(len < (int)sizeof line ? len : (int)sizeof line - 1));
                (*files)++;
            }
        }
        free(full), free(r);
    }
    free_strings(names, n);
}

static void dataset_checksums(Str *b, const char *name, const char *root, const char *cache_dir) {
    const char *const *paths = dataset_paths(name);
    if (!paths) return;
    for (int i = 0; paths[i]; i++) {
        char *p = data_file(name, root, paths[i]);
        struct stat st;
        if (stat(p, &st) != 0) {
            str_addf(b, "data.%s = %s missing\n", name, p);
        } else if (S_ISDIR(st.st_mode)) {
            Sha256 s;
            sha256_init(&s);
            long long files = 0;
            hash_tree(&s, p, "", &files);
            char hex[65];
            sha256_hex_final(&s, hex);
            str_addf(b, "data.%s = %s folder files=%lld listing_sha256=%s (names, sizes, mtimes)\n", name, p, files,
                     hex);
        } else {
            char hex[65];
            cached_sha256(cache_dir, p, &st, hex);
            str_addf(b, "data.%s = %s size=%lld mtime=%lld sha256=%s\n", name, p, (long long)st.st_size,
                     (long long)st.st_mtime, hex);
        }
        free(p);
    }
}

/* ---- versions and machine ---- */

char *library_versions(void) {
    const dnnl_version_t *v = dnnl_version();
    Str b = {0};
    str_addf(&b, "%s, oneDNN %d.%d.%d (%s), zlib %s", luaexp_lua_release(), v->major, v->minor, v->patch,
             v->hash ? v->hash : "?", zlibVersion());
#ifdef LIBJPEG_TURBO_VERSION
    str_addf(&b, ", libjpeg-turbo %s", STR(LIBJPEG_TURBO_VERSION));
#else
    str_add(&b, ", libjpeg-turbo (version unknown)");
#endif
    str_add(&b, ", OpenBLAS not linked (oneDNN's sgemm does the matmuls)");
#ifdef RSA_CUDA
    int rt = 0;
    if (cudaRuntimeGetVersion(&rt) == cudaSuccess) str_addf(&b, ", CUDA runtime %d.%d", rt / 1000, (rt % 1000) / 10);
    size_t dn = cudnnGetVersion();
    size_t dmajor = dn >= 90000 ? dn / 10000 : dn / 1000, dminor = dn >= 90000 ? (dn % 10000) / 100 : (dn % 1000) / 100;
    str_addf(&b, ", cuDNN %zu.%zu.%zu", dmajor, dminor, dn % 100);
    int nv = 0;
    if (ncclGetVersion(&nv) == ncclSuccess) str_addf(&b, ", NCCL %d.%d.%d", nv / 10000, (nv % 10000) / 100, nv % 100);
#ifdef RSA_CUDA_EMU
    str_add(&b, " (all three emulated on the CPU by tests/emu, `make CUDA=emu`: the versions are of their headers)");
#endif
#else
    str_add(&b, ", CUDA not built");
#endif
    return b.s;
}

static char *cpu_model(void) {
    char *text = slurp("/proc/cpuinfo");
    char *m = text ? kv_get(text, "model name") : NULL;
    if (m) {
        char *v = m;
        while (*v == ':' || *v == ' ' || *v == '\t') v++;
        char *r = xstrdup(v);
        free(m);
        m = r;
    }
    free(text);
    return m ? m : xstrdup("unknown CPU");
}

/* The widest instruction set oneDNN dispatches to here. Its kernels (and so a cpu run's last bits) follow it: a run
 * reruns bit for bit on a machine with the same one (REPRODUCE.md, Guarantees). */
static const char *onednn_isa(void) {
    switch (dnnl_get_effective_cpu_isa()) {
    case dnnl_cpu_isa_sse41: return "sse41";
    case dnnl_cpu_isa_avx: return "avx";
    case dnnl_cpu_isa_avx2: return "avx2";
    case dnnl_cpu_isa_avx2_vnni: return "avx2_vnni";
    case dnnl_cpu_isa_avx512_mic: return "avx512_mic";
    case dnnl_cpu_isa_avx512_mic_4ops: return "avx512_mic_4ops";
    case dnnl_cpu_isa_avx512_core: return "avx512_core";
    case dnnl_cpu_isa_avx512_core_vnni: return "avx512_core_vnni";
    case dnnl_cpu_isa_avx512_core_bf16: return "avx512_core_bf16";
    case dnnl_cpu_isa_avx512_core_amx: return "avx512_core_amx";
    default: return "unknown";
    }
}

char *machine_text(void) {
    char *cpu = cpu_model();
    char *text = slurp("/proc/cpuinfo");
    char *vendor = text ? kv_get(text, "vendor_id") : NULL;
    free(text);
    const char *v = vendor ? vendor : "unknown";
    const char *cap_var = "ONEDNN_MAX_CPU_ISA", *cap = getenv(cap_var);
    if (!cap || !cap[0]) cap_var = "DNNL_MAX_CPU_ISA", cap = getenv(cap_var);
    bool capped = cap && cap[0];
    char *r = xasprintf("cpu = %s\ncpu_vendor = %s\ncpu_isa = %s (oneDNN's widest kernels here%s%s%s%s)\n", cpu, v,
                        onednn_isa(), capped ? "; capped by " : "", capped ? cap_var : "", capped ? "=" : "",
                        capped ? cap : "");
    free(cpu), free(vendor);
    return r;
}

char *hardware_line(const char *backend) {
    char *cpu = cpu_model();
    char *r = xasprintf("%s, %ld cores online, backend %s, %d compute threads", cpu, sysconf(_SC_NPROCESSORS_ONLN),
                        backend, omp_get_max_threads());
    free(cpu);
    return r;
}

/* The arithmetic of a mixed-precision run's convolutions. bf16 runs on the cpu backend before 2026-12-01 ran fp32
 * kernels on the rounded values: a rerun differs from them in the last bits. */
static const char *lowp_convolutions(const TrainConfig *c) {
    const char *plain = "fp32 kernels on the rounded values";
    if (strcmp(c->backend, "cpu") == 0)
        return c->precision == PRECISION_BF16 && c->lowp_convolutions && conv_cpu_has_bf16()
                   ? "oneDNN bf16 kernels (bf16 products, fp32 sums; the 3-channel stem in fp32)"
                   : plain;
#ifdef RSA_CUDA
#define CUDNN_16BIT "cuDNN 16-bit tensor-core kernels for forward"
#define CUDNN_16BIT_WHERE                                                                                             \
    "(exact products, fp32 sums, one rounding of the result; the stem, biased convolutions and channel counts not "  \
    "multiples of 8 in fp32/TF32)"
    if (strcmp(c->backend, "cuda") == 0 && c->lowp_convolutions)
        return c->lowp_weight_grads ? CUDNN_16BIT ", input gradient and weight gradient " CUDNN_16BIT_WHERE
                                    : CUDNN_16BIT " and input gradient " CUDNN_16BIT_WHERE
                                                  ", weight gradient in fp32/TF32";
#undef CUDNN_16BIT
#undef CUDNN_16BIT_WHERE
#endif
    return plain;
}

/* The card a cuda run trained on (which one of a node's, its size, its driver): numbers from one card do not carry
 * over to another, so the run's record names it. */
static void gpu_line(Str *b, int world) {
#ifdef RSA_CUDA
    int device = -1, driver = 0;
    struct cudaDeviceProp p;
    cudaError_t e = cudaGetDevice(&device);
    if (e == cudaSuccess) e = cudaGetDeviceProperties(&p, device);
    if (e != cudaSuccess) {
        str_addf(b, "gpu = unknown (%s)\n", cudaGetErrorString(e));
        cudaGetLastError(); /* clears it: the error is reported here, not by the next call */
        return;
    }
    p.name[sizeof p.name - 1] = 0;
    str_addf(b, "gpu = %s (%sdevice %d, compute capability %d.%d, %.1f GiB", p.name, world > 1 ? "rank 0's: " : "",
             device, p.major, p.minor, (double)p.totalGlobalMem / (1024.0 * 1024 * 1024));
    if (cudaDriverGetVersion(&driver) == cudaSuccess)
        str_addf(b, ", driver for CUDA %d.%d", driver / 1000, (driver % 1000) / 10);
    str_add(b, ")\n");
#else
    (void)b; /* a build without CUDA stops a cuda run before it starts */
#endif
}

char *gpu_text(void) {
    Str b = {0};
    str_add(&b, "");
    if (backend_cuda()) gpu_line(&b, 1);
    else rsa_error_clear(); /* no cuda backend is no error here: no line */
    return b.s;
}

char *provenance_text(const TrainConfig *c, const char *home, const char *cache_dir, const char *command,
                      int processes_on_node) {
    Str b = {0};
    char when[64];
    utc_now(when, sizeof when);
    str_addf(&b, "[session %s]\n", when);
    str_addf(&b, "command = %s\n", command);
    char *git_head[] = {"git", "-C", (char *)home, "rev-parse", "HEAD", NULL};
    char *git_dirty[] = {"git", "-C", (char *)home, "status", "--porcelain", "--untracked-files=no", NULL};
    char *head = command_line(NULL, git_head);
    char *dirty = head ? command_line(NULL, git_dirty) : NULL;
    str_addf(&b, "git_commit = %s\n", head ? head : "unknown (not a git checkout)");
    str_addf(&b, "git_dirty = %s\n", !head ? "unknown" : dirty && dirty[0] ? "true (uncommitted changes)" : "false");
    free(head), free(dirty);
    str_addf(&b, "compiler = gcc-compatible %s\n", __VERSION__);
    str_addf(&b, "cflags = %s\n", RSA_BUILD_CFLAGS);
    char *libs = library_versions();
    str_addf(&b, "libraries = %s\n", libs);
    free(libs);
    char *machine = machine_text();
    str_add(&b, machine);
    free(machine);
    str_addf(&b, "cores_online = %ld\n", sysconf(_SC_NPROCESSORS_ONLN));
    str_addf(&b, "compute_threads = %d\n", omp_get_max_threads());
    const char *wait = getenv("OMP_WAIT_POLICY");
    str_addf(&b, "omp_wait_policy = %s\n", wait ? wait : "default");
    if (world_size() > 1) /* the command above is one rank's: the launcher's part is not in it */
        str_addf(&b, "processes = %d (data parallel, from %s; %d on rank 0's node%s)\n", world_size(),
                 world_size_source() ? world_size_source() : "the launcher", processes_on_node,
                 strcmp(c->backend, "cuda") == 0 ? ", one GPU each" : "");
    str_addf(&b, "loader_threads = %d%s\n", train_loader_threads(c, processes_on_node),
             c->loader_threads == LOADER_THREADS_AUTO ? " (auto)" : "");
    str_addf(&b, "backend = %s\n", c->backend);
    bool cuda = strcmp(c->backend, "cuda") == 0;
    if (cuda) gpu_line(&b, world_size());
    if (c->precision != PRECISION_FP32)
        str_addf(&b, "precision = %s (mixed: activations and their gradients rounded to %s, fp32 accumulation and "
                     "master weights%s; evaluation in fp32)\n",
                 precision_name(c->precision), precision_name(c->precision),
                 c->precision == PRECISION_FP16 ? ", dynamic loss scaling" : "");
    else if (cuda)
        str_addf(&b, "precision = %s\n", c->tf32 ? "tf32 (tensor-core math)" : "fp32 (strict)");
    else
        str_addf(&b, "precision = fp32%s\n", c->tf32 ? " (tf32 asked for: the cpu and ref backends have no tf32)" : "");
    if (c->precision != PRECISION_FP32) {
        str_addf(&b, "lowp_convolutions = %s\n", lowp_convolutions(c));
        str_addf(&b, "weight_gradients = %s\n",
                 c->lowp_weight_grads ? "convolution and linear: each pass's rounded and the passes summed in the "
                                        "16-bit format, as autocast's (lowp_weight_grads)"
                                      : "fp32 sums (autocast's are rounded to the 16-bit format)");
    }
    if (cuda)
        str_addf(&b, "cudnn_algorithms = %s\n",
                 c->deterministic ? "deterministic (cuDNN's deterministic algorithms, heuristics)"
                                  : "fastest (cudnnFind timing; may differ between runs)");
    char host[256] = "";
    if (gethostname(host, sizeof host) != 0) snprintf(host, sizeof host, "unknown");
    host[sizeof host - 1] = 0;
    str_addf(&b, "host = %s\n", host);
    str_addf(&b, "determinism = counter-based Philox streams keyed by (seed %llu, purpose, epoch, sample, view): data "
                 "order and augmentations do not depend on thread counts; resume is bit-exact; floating-point "
                 "reductions of the %s backend may differ in the last bits with another thread count or machine\n",
             (unsigned long long)c->seed, c->backend);
    const char *root = config_data_root(c);
    str_addf(&b, "data_root = %s\n", root);
    dataset_checksums(&b, c->dataset, root, cache_dir);
    str_add(&b, "\n");
    return b.s;
}
