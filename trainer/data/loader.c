/* The multi-threaded batch loader.
 *
 * Batches are made in order into `prefetch` slots (slot = step mod prefetch); loader_next hands them out in step
 * order, and a slot is reused only after the consumer released it, which bounds the memory and the work done ahead.
 * The workers share the batches sample by sample: a worker claims the next few samples of the earliest batch not yet
 * handed out (a chunk), makes them into their places, and the batch is ready when its last chunk is. So every thread
 * works on the batch needed next, and the memory is `prefetch` batches whatever the thread count (a GPU process may
 * run dozens of loader threads: a worker per batch would need a slot per thread). Every value in a batch is a
 * function of (seed, epoch, dataset index, view) and of the epoch's order, never of which thread made it, so the
 * batches are identical for any number of threads (tests/data/test_loader.c checks this).
 *
 * A sample whose image does not decode fails the batch (the error names the file), or, when the data set was opened
 * with allow_corrupt, is replaced by the next sample of this rank's epoch order that decodes (wrapping around): a
 * deterministic choice, so the batch is still the same for any thread count. Such images are counted once each
 * (dataset_skipped) and in the loader's stats per occurrence. */
#include "dataset_internal.h"
#include "sample.h"

#include "trainer/core/error.h"
#include "trainer/core/hostmem.h"

#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { SLOT_FREE, SLOT_FILLING, SLOT_READY, SLOT_HELD };

typedef struct {
    Batch b;
    int state;
    int64_t step;
    int claimed;   /* SLOT_FILLING: samples handed to workers */
    int remaining; /* SLOT_FILLING: samples not made yet */
    void *mem;
    size_t bytes;
} Slot;

typedef struct {
    struct Loader *l;
    AugScratch scratch;
    DataReader *reader;
    pthread_t thread;
    bool started;
} Worker;

struct Loader {
    const Dataset *ds;
    LoaderSpec spec;
    ViewCfg cfg;
    int64_t n_rank, steps;
    int64_t *perm;  /* N entries: the epoch permutation (or identity) */
    int64_t *order; /* n_rank dataset indices this rank visits */
    Slot *slots;
    int nslots;
    Worker *workers;
    int nworkers;
    Worker sync; /* threads == 0: batches made by the caller */
    int chunk;   /* samples a worker claims at a time */
    pthread_mutex_t mu;
    pthread_cond_t work, ready;
    bool running, stop;
    int epoch;
    int64_t next_claim, next_give; /* next_claim: the batch whose samples are being handed out */
    int filling;                   /* chunks being made */
    bool failed;
    char error[2048];
    LoaderStats stats;
};

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

void data_epoch_permutation(uint64_t seed, bool eval, int epoch, size_t n, int64_t *perm) {
    for (size_t i = 0; i < n; i++) perm[i] = (int64_t)i;
    Rng r;
    rng_init(&r, seed, eval ? RNG_EVAL_SHUFFLE : RNG_SHUFFLE, (uint32_t)epoch, 0, 0);
    for (size_t i = n; i > 1; i--) { /* Fisher-Yates */
        size_t j = rng_below(&r, (uint32_t)i);
        int64_t t = perm[i - 1];
        perm[i - 1] = perm[j];
        perm[j] = t;
    }
}

/* One sample into position k of the batch. Returns 0, or -1 with rsa_fail. */
static int make_sample(Worker *w, int epoch, int64_t pos, Batch *b, int k) {
    struct Loader *l = w->l;
    Dataset *ds = (Dataset *)l->ds; /* only the atomic bad-image marks change */
    size_t frame = (size_t)3 * l->spec.size * l->spec.size;
    float *out[4] = {NULL, NULL, NULL, NULL};
    for (int v = 0; v < l->cfg.views; v++) out[v] = b->view[v] + (size_t)k * frame;
    for (int64_t attempt = 0; attempt < l->n_rank; attempt++) {
        int64_t index = l->order[(pos + attempt) % l->n_rank];
        if (ds->bad && atomic_load(&ds->bad[index])) {
            pthread_mutex_lock(&l->mu);
            l->stats.skipped++;
            pthread_mutex_unlock(&l->mu);
            continue;
        }
        int h, wd;
        ViewParams p[4];
        Img img;
        int rc = data_reader_size(w->reader, (size_t)index, &h, &wd);
        if (rc == 0) {
            view_plan(&l->cfg, epoch, index, h, wd, p);
            JpegScale sc = JPEG_FULL;
            if (l->spec.jpeg_dct_scale && ds->paths) {
                int mh, mw;
                view_min_source(&l->cfg, p, h, wd, &mh, &mw);
                sc = jpeg_pick_scale(h, wd, mh, mw);
            }
            rc = data_reader_image(w->reader, (size_t)index, sc, &img);
        }
        if (rc != 0) {
            if (!ds->paths || !ds->allow_corrupt) return -1;
            uint8_t was = atomic_exchange(&ds->bad[index], 1);
            if (!was) atomic_fetch_add(&ds->skipped, 1);
            pthread_mutex_lock(&l->mu);
            l->stats.skipped++;
            pthread_mutex_unlock(&l->mu);
            continue;
        }
        if (view_render(&l->cfg, p, &img, h, wd, &w->scratch, out)) return -1;
        b->label[k] = ds->labels[index];
        b->index[k] = index;
        return 0;
    }
    return rsa_fail("the data set has no decodable image", "%s: every image of this rank's epoch failed to decode",
                    ds->name);
}

/* Under the lock: slot becomes step's batch, to be filled. */
static void batch_begin(struct Loader *l, Slot *slot, int64_t step) {
    Batch *b = &slot->b;
    int64_t left = l->n_rank - step * l->spec.batch;
    b->n = (int)(left < l->spec.batch ? left : l->spec.batch);
    b->epoch = l->epoch;
    b->step = (int)step;
    slot->step = step;
    slot->claimed = 0;
    slot->remaining = b->n;
    slot->state = SLOT_FILLING;
}

/* Samples [from, to) of the slot's batch. */
static int make_samples(Worker *w, Slot *slot, int from, int to) {
    Batch *b = &slot->b;
    int64_t first = (int64_t)b->step * w->l->spec.batch;
    for (int k = from; k < to; k++)
        if (make_sample(w, b->epoch, first + k, b, k)) {
            rsa_error_context("epoch %d step %d sample %d", b->epoch, b->step, k);
            return -1;
        }
    return 0;
}

/* Under the lock: the next chunk to make, or NULL when there is none now (the batch to fill next still occupies
 * its slot, or the epoch is done, stopped or failed). */
static Slot *claim_chunk(struct Loader *l, int *from, int *to) {
    if (!l->running || l->failed || l->next_claim >= l->steps) return NULL;
    Slot *slot = &l->slots[l->next_claim % l->nslots];
    if (slot->state == SLOT_FREE)
        batch_begin(l, slot, l->next_claim);
    else if (slot->state != SLOT_FILLING || slot->step != l->next_claim)
        return NULL;
    *from = slot->claimed;
    *to = slot->b.n - *from < l->chunk ? slot->b.n : *from + l->chunk;
    slot->claimed = *to;
    if (*to == slot->b.n) l->next_claim++;
    return slot;
}

static void *worker_main(void *arg) {
    Worker *w = arg;
    struct Loader *l = w->l;
    pthread_mutex_lock(&l->mu);
    while (!l->stop) {
        int from, to;
        Slot *slot = claim_chunk(l, &from, &to);
        if (!slot) {
            pthread_cond_wait(&l->work, &l->mu);
            continue;
        }
        l->filling++;
        pthread_mutex_unlock(&l->mu);
        double t0 = now();
        int rc = make_samples(w, slot, from, to);
        double t1 = now();
        pthread_mutex_lock(&l->mu);
        l->filling--;
        l->stats.make_seconds += t1 - t0;
        if (rc != 0) {
            /* the slot stays FILLING: loader_next reports the failure, loader_start frees every slot */
            if (!l->failed) snprintf(l->error, sizeof l->error, "%s", rsa_error_message());
            l->failed = true;
        } else if ((slot->remaining -= to - from) == 0) {
            slot->state = SLOT_READY;
        }
        pthread_cond_broadcast(&l->ready);
        pthread_cond_broadcast(&l->work);
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

int loader_spec_default(const char *name, ViewMode mode, uint64_t seed, LoaderSpec *spec) {
    DataDefaults d;
    if (data_defaults(name, &d)) return -1;
    memset(spec, 0, sizeof *spec);
    spec->mode = mode;
    spec->size = mode == VIEWS_NONE && d.native > 0 ? d.native : d.size;
    memcpy(spec->mean, d.mean, sizeof d.mean);
    memcpy(spec->std, d.std, sizeof d.std);
    spec->batch = 256;
    spec->seed = seed;
    bool random_order = mode != VIEWS_EVAL_TEST && mode != VIEWS_NONE;
    spec->drop_last = random_order && mode != VIEWS_EVAL_TRAIN ? true : false;
    spec->shuffle = random_order;
    spec->eval = mode == VIEWS_EVAL_TRAIN || mode == VIEWS_EVAL_TEST;
    spec->resize = mode == VIEWS_EVAL_TEST ? d.eval_resize : 0;
    spec->threads = 2;
    spec->world = 1;
    return 0;
}

int64_t loader_block_start(int64_t n, int rank, int world) { return n * rank / (world > 0 ? world : 1); }

int cores_share(int usable, int online, int processes_on_node) {
    int share = online / (processes_on_node > 0 ? processes_on_node : 1);
    int n = usable < share ? usable : share;
    return n > 0 ? n : 1;
}

void cores_of_process(int *usable, int *online) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    *online = n > 0 ? (int)n : 1;
    *usable = *online;
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) *usable = CPU_COUNT(&set); /* mpirun's binding */
}

int loader_threads_for(bool feeds_gpu, int cores_usable, int cores_online, int processes_on_node) {
    if (!feeds_gpu) return 2;
    int n = cores_share(cores_usable, cores_online, processes_on_node) - 1; /* one core drives the GPU */
    return n < 2 ? 2 : n > 32 ? 32 : n;
}

int loader_threads_auto(bool feeds_gpu, int processes_on_node) {
    int usable, online;
    cores_of_process(&usable, &online);
    return loader_threads_for(feeds_gpu, usable, online, processes_on_node);
}

static void free_slots(struct Loader *l) {
    if (!l->slots) return;
    void (*release)(void *, size_t) = l->spec.host_free ? l->spec.host_free : hostmem_free;
    for (int s = 0; s < l->nslots; s++)
        if (l->slots[s].mem) release(l->slots[s].mem, l->slots[s].bytes);
    free(l->slots);
    l->slots = NULL;
}

/* LoaderSpec.groups: within each full batch, position i goes to group i % G, at its place i / G there, so that
 * group g is what rank g of G ranks sharing this batch would take (every G-th position from g). */
static void group_batches(Loader *l) {
    const int64_t b = l->spec.batch, G = l->spec.groups, size = b / G;
    int64_t *tmp = malloc(sizeof(int64_t) * (size_t)b);
    if (!tmp) rsa_fatal("free memory", "out of memory");
    for (int64_t first = 0; first + b <= l->n_rank; first += b) {
        for (int64_t i = 0; i < b; i++) tmp[(i % G) * size + i / G] = l->order[first + i];
        memcpy(l->order + first, tmp, sizeof(int64_t) * (size_t)b);
    }
    free(tmp);
}

Loader *loader_new(const Dataset *ds, const LoaderSpec *spec_in) {
    LoaderSpec spec = *spec_in;
    if (spec.world <= 0) spec.world = 1;
    if (spec.batch < 1) return rsa_fail("use a batch of at least 1", "batch size %d", spec.batch), NULL;
    if (spec.rank < 0 || spec.rank >= spec.world)
        return rsa_fail("use 0 <= rank < world", "rank %d of world %d", spec.rank, spec.world), NULL;
    if (spec.threads < 0 || spec.threads > 256)
        return rsa_fail("use 0 to 256 threads", "%d loader threads", spec.threads), NULL;
    if (spec.groups < 0 || (spec.groups > 1 && spec.batch % spec.groups != 0))
        return rsa_fail("use groups that divide the batch", "%d groups of a batch of %d", spec.groups, spec.batch),
               NULL;
    if (!spec.host_alloc != !spec.host_free)
        return rsa_fail("set both host_alloc and host_free, or neither", "a loader spec with one memory hook"), NULL;
    /* one batch held by the consumer, one being made, one ready: enough when the workers share each batch */
    if (spec.prefetch <= 0) spec.prefetch = 3;
    if (spec.threads == 0) spec.prefetch = 1;
    struct Loader *l = calloc(1, sizeof *l);
    if (!l) rsa_fatal("free memory", "out of memory");
    l->ds = ds;
    l->spec = spec;
    /* about four chunks per thread and batch, so that the threads finish a batch together; at most 32 samples */
    l->chunk = spec.batch / (4 * (spec.threads > 0 ? spec.threads : 1));
    if (l->chunk > 32) l->chunk = 32;
    if (l->chunk < 1) l->chunk = 1;
    if (view_cfg_init(&l->cfg, &spec)) {
        free(l);
        return NULL;
    }
    size_t n = dataset_count(ds);
    int64_t N = (int64_t)n;
    if (spec.shard_blocks && spec.drop_last)
        return free(l), rsa_fail("use shard_blocks without drop_last", "a loader spec with both"), NULL;
    if (spec.shard_blocks)
        l->n_rank = loader_block_start(N, spec.rank + 1, spec.world) - loader_block_start(N, spec.rank, spec.world);
    else
        l->n_rank = spec.drop_last ? N / spec.world : (N - spec.rank + spec.world - 1) / spec.world;
    if (l->n_rank < 0) l->n_rank = 0;
    l->steps = spec.drop_last ? l->n_rank / spec.batch : (l->n_rank + spec.batch - 1) / spec.batch;
    if (l->steps == 0) {
        rsa_fail("use a smaller batch or more data", "%s: %lld samples for this rank make no batch of %d%s",
                 ds->name, (long long)l->n_rank, spec.batch, spec.drop_last ? " (the last partial batch is dropped)" : "");
        free(l);
        return NULL;
    }
    l->perm = malloc((n ? n : 1) * sizeof *l->perm);
    l->order = malloc((size_t)(l->n_rank ? l->n_rank : 1) * sizeof *l->order);
    if (!l->perm || !l->order) rsa_fatal("free memory", "out of memory");
    l->nslots = spec.prefetch;
    l->slots = calloc((size_t)l->nslots, sizeof *l->slots);
    if (!l->slots) rsa_fatal("free memory", "out of memory");
    size_t frame = (size_t)3 * spec.size * spec.size;
    int views = l->cfg.views;
    for (int s = 0; s < l->nslots; s++) {
        Slot *sl = &l->slots[s];
        size_t view_bytes = ((size_t)spec.batch * frame * sizeof(float) + 63) & ~(size_t)63;
        size_t meta = (size_t)spec.batch * (sizeof(int32_t) + sizeof(int64_t)) + 64;
        sl->bytes = view_bytes * views + meta;
        sl->mem = spec.host_alloc ? spec.host_alloc(sl->bytes) : hostmem_alloc(sl->bytes);
        if (!sl->mem) {
            rsa_error_context("while allocating %d prefetch batches of %d x %d views of %dx%d", l->nslots, spec.batch,
                              views, spec.size, spec.size);
            free_slots(l);
            free(l->perm), free(l->order), free(l);
            return NULL;
        }
        char *p = sl->mem;
        for (int v = 0; v < views; v++) sl->b.view[v] = (float *)(p + (size_t)v * view_bytes);
        sl->b.index = (int64_t *)(p + (size_t)views * view_bytes);
        sl->b.label = (int32_t *)(sl->b.index + spec.batch);
        sl->b.views = views;
        sl->b.size = spec.size;
        sl->state = SLOT_FREE;
    }
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->work, NULL);
    pthread_cond_init(&l->ready, NULL);
    l->epoch = -1;
    int nw = spec.threads;
    l->workers = calloc((size_t)(nw ? nw : 1), sizeof *l->workers);
    if (!l->workers) rsa_fatal("free memory", "out of memory");
    l->sync.l = l;
    l->sync.reader = data_reader_new(ds);
    bool ok = l->sync.reader != NULL;
    for (int i = 0; ok && i < nw; i++) {
        Worker *w = &l->workers[i];
        w->l = l;
        w->reader = data_reader_new(ds);
        if (!w->reader) {
            ok = false;
            break;
        }
        l->nworkers = i + 1;
        if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
            rsa_fail("raise the thread limit or use fewer loader threads", "cannot start loader thread %d", i);
            ok = false;
            break;
        }
        w->started = true;
    }
    if (!ok) {
        loader_free(l);
        return NULL;
    }
    return l;
}

int loader_start(Loader *l, int epoch, int step) {
    if (epoch < 0 || step < 0 || step > l->steps)
        return rsa_fail("use 0 <= step <= steps per epoch", "cannot start epoch %d at step %d (%lld steps an epoch)",
                        epoch, step, (long long)l->steps);
    pthread_mutex_lock(&l->mu);
    for (int s = 0; s < l->nslots; s++)
        if (l->slots[s].state == SLOT_HELD) {
            pthread_mutex_unlock(&l->mu);
            return rsa_fail("release every batch (loader_release) before starting an epoch",
                            "batch of step %lld is still held", (long long)l->slots[s].step);
        }
    l->running = false;
    while (l->filling > 0) pthread_cond_wait(&l->ready, &l->mu); /* workers of the old epoch read the order */
    for (int s = 0; s < l->nslots; s++) l->slots[s].state = SLOT_FREE;
    size_t n = dataset_count(l->ds);
    if (l->spec.shuffle)
        data_epoch_permutation(l->spec.seed, l->spec.eval, epoch, n, l->perm);
    else
        for (size_t i = 0; i < n; i++) l->perm[i] = (int64_t)i;
    if (l->spec.shard_blocks) {
        int64_t first = loader_block_start((int64_t)n, l->spec.rank, l->spec.world);
        for (int64_t k = 0; k < l->n_rank; k++) l->order[k] = l->perm[first + k];
    } else {
        for (int64_t k = 0; k < l->n_rank; k++) l->order[k] = l->perm[l->spec.rank + k * l->spec.world];
    }
    if (l->spec.groups > 1) group_batches(l);
    l->epoch = epoch;
    l->next_claim = l->next_give = step;
    l->failed = false;
    l->running = true;
    pthread_cond_broadcast(&l->work);
    pthread_mutex_unlock(&l->mu);
    return 0;
}

int loader_next(Loader *l, Batch **out) {
    *out = NULL;
    if (l->epoch < 0) return rsa_fail("call loader_start first", "loader_next before loader_start");
    pthread_mutex_lock(&l->mu);
    if (l->next_give >= l->steps) {
        pthread_mutex_unlock(&l->mu);
        return 0;
    }
    int64_t step = l->next_give;
    Slot *slot = &l->slots[step % l->nslots];
    if (l->nworkers == 0) {
        if (slot->state != SLOT_FREE) {
            pthread_mutex_unlock(&l->mu);
            return rsa_fail("release the previous batch first (threads = 0 keeps one batch)",
                            "loader_next with a batch still held");
        }
        batch_begin(l, slot, step);
        pthread_mutex_unlock(&l->mu);
        double t0 = now();
        int rc = make_samples(&l->sync, slot, 0, slot->b.n);
        double t1 = now();
        pthread_mutex_lock(&l->mu);
        l->stats.make_seconds += t1 - t0;
        l->stats.wait_seconds += t1 - t0;
        if (rc != 0) {
            slot->state = SLOT_FREE; /* a later call makes the batch again */
            pthread_mutex_unlock(&l->mu);
            return -1;
        }
    } else {
        double t0 = now();
        while (!(slot->state == SLOT_READY && slot->step == step) && !l->failed) pthread_cond_wait(&l->ready, &l->mu);
        l->stats.wait_seconds += now() - t0;
        if (l->failed) {
            pthread_mutex_unlock(&l->mu);
            return rsa_fail("", "loader: %s", l->error);
        }
    }
    slot->state = SLOT_HELD;
    slot->step = step;
    l->next_give++;
    l->stats.batches++;
    l->stats.images += slot->b.n;
    *out = &slot->b;
    pthread_mutex_unlock(&l->mu);
    return 0;
}

void loader_release(Loader *l, Batch *b) {
    if (!b) return;
    pthread_mutex_lock(&l->mu);
    for (int s = 0; s < l->nslots; s++)
        if (&l->slots[s].b == b) l->slots[s].state = SLOT_FREE;
    pthread_cond_broadcast(&l->work);
    pthread_mutex_unlock(&l->mu);
}

int64_t loader_steps_per_epoch(const Loader *l) { return l->steps; }
int64_t loader_samples_per_epoch(const Loader *l) { return l->n_rank; }

LoaderStats loader_stats(const Loader *l) {
    pthread_mutex_lock((pthread_mutex_t *)&l->mu);
    LoaderStats s = l->stats;
    pthread_mutex_unlock((pthread_mutex_t *)&l->mu);
    return s;
}

void loader_free(Loader *l) {
    if (!l) return;
    pthread_mutex_lock(&l->mu);
    l->stop = true;
    pthread_cond_broadcast(&l->work);
    pthread_mutex_unlock(&l->mu);
    for (int i = 0; i < l->nworkers; i++) {
        Worker *w = &l->workers[i];
        if (w->started) pthread_join(w->thread, NULL);
        data_reader_free(w->reader);
        aug_scratch_free(&w->scratch);
    }
    data_reader_free(l->sync.reader);
    aug_scratch_free(&l->sync.scratch);
    free(l->workers);
    pthread_cond_destroy(&l->work);
    pthread_cond_destroy(&l->ready);
    pthread_mutex_destroy(&l->mu);
    free_slots(l);
    free(l->perm);
    free(l->order);
    free(l);
}
