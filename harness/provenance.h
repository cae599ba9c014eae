/* Where a run's numbers come from: the code (git commit, dirty flag, compiler and flags), the libraries (Lua,
 * libjpeg-turbo, zlib, oneDNN, OpenBLAS, CUDA/cuDNN/NCCL when used), the machine (CPU model, threads), the
 * determinism settings, and the data (every file a data set reads: size, mtime and SHA-256; folder data sets: a
 * SHA-256 of their sorted listing with sizes and mtimes). Also: which data sets are present under a data root. */
#ifndef RSA_PROVENANCE_H
#define RSA_PROVENANCE_H

#include "trainer/train/config.h"

#include <stdbool.h>

/* The data root of a config: cfg->data_root, else $RSA_DATA, else "data" (relative to the working directory). */
const char *config_data_root(const TrainConfig *c);
/* Whether every file data set `name` reads exists under root (Fashion-MNIST also looks in Debian's location). If
 * not and missing is non-NULL, *missing names the first missing path (malloc'd). */
bool dataset_present(const char *name, const char *root, char **missing);

/* The provenance section of one session (malloc'd text, key = value lines). cache_dir keeps file checksums keyed
 * by (path, size, mtime) so that large data sets are hashed once. */
char *provenance_text(const TrainConfig *c, const char *home, const char *cache_dir, const char *command,
                      int processes_on_node);
/* The machine's lines of provenance, which decide whether a cpu run reruns bit for bit here: "cpu = MODEL",
 * "cpu_vendor = ...", "cpu_isa = ..." (oneDNN's widest instruction set), each ending in a newline (malloc'd). */
char *machine_text(void);
/* "gpu = NAME (device N, compute capability X.Y, N GiB, driver ...)\n" where the cuda backend can run, else ""
 * (malloc'd): the card in provenance's words, which verify_results.sh compares with a cuda run's. */
char *gpu_text(void);
/* One line for reports: CPU model, cores, backend, threads. */
char *hardware_line(const char *backend);
/* Library versions on one line ("Lua 5.4.4, oneDNN 3.0.0, ..."). */
char *library_versions(void);

#endif
