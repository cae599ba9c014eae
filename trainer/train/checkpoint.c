#include "checkpoint.h"

#include "../core/error.h"
#include "../io/model_io.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *FORMAT = "rsa-repro checkpoint";
static const char *VERSION = "1";

int checkpoint_save(const Learner *l, RunPosition pos, const char *config_hash, const char *path) {
    StWriter *w = st_writer_new();
    ModelState on, tg = {0};
    model_state_add(l->online, w, "", "", &on);
    if (l->target) model_state_add(l->target, w, "", "", &tg); /* SimCLR and SimSiam have no target network */
    const Model *m = l->online;
    float *mom = malloc(sizeof(float) * (m->n_weights ? m->n_weights : 1));
    if (!mom) rsa_fatal("free memory", "out of memory");
    m->be->download(mom, l->opt.momentum_buf, sizeof(float) * m->n_weights);
    char name[2 * MODEL_NAME_BYTES];
    for (int i = 0; i < m->n_params; i++) {
        snprintf(name, sizeof name, "optimizer.momentum.%s", m->params[i].name);
        st_add(w, name, ST_F32, m->params[i].ndim, m->params[i].shape, mom + m->params[i].offset);
    }
    int64_t qshape[2] = {l->cfg->queue_size, l->out_dim};
    if (l->queue) st_add(w, "moco.queue", ST_F32, 2, qshape, l->queue);
    char num[64];
    snprintf(num, sizeof num, "%" PRId64, l->queue_next);
    st_set_meta(w, "queue_next", num);
    st_set_meta(w, "format", FORMAT);
    st_set_meta(w, "version", VERSION);
    st_set_meta(w, "config_hash", config_hash);
    st_set_meta(w, "method", method_name(l->cfg->method));
    snprintf(num, sizeof num, "%" PRId64, l->step);
    st_set_meta(w, "step", num);
    snprintf(num, sizeof num, "%d", pos.epoch);
    st_set_meta(w, "epoch", num);
    snprintf(num, sizeof num, "%" PRId64, pos.step_in_epoch);
    st_set_meta(w, "step_in_epoch", num);
    snprintf(num, sizeof num, "%" PRIu64, l->cfg->seed);
    st_set_meta(w, "seed", num);
    snprintf(num, sizeof num, "%.17g", pos.train_seconds);
    st_set_meta(w, "train_seconds", num);
    if (l->scaler.on) { /* fp16 only, so the checkpoints of other runs keep their bytes */
        snprintf(num, sizeof num, "%.17g", l->scaler.scale);
        st_set_meta(w, "loss_scale", num);
        snprintf(num, sizeof num, "%" PRId64, l->scaler.good_steps);
        st_set_meta(w, "loss_scale_good_steps", num);
        snprintf(num, sizeof num, "%" PRId64, l->scaler.skipped);
        st_set_meta(w, "loss_scale_skipped", num);
    }
    int rc = st_write(w, path);
    st_writer_free(w);
    model_state_free(&on);
    model_state_free(&tg);
    free(mom);
    return rc ? rsa_error_context("writing checkpoint") : 0;
}

static int meta_int(const StFile *f, const char *key, int64_t *out) {
    const char *v = st_meta(f, key);
    char *end;
    if (!v || !*v) return rsa_fail("the checkpoint is damaged; delete it to restart the run", "%s: no %s", f->path, key);
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (*end || x < 0 || errno == ERANGE)
        return rsa_fail("the checkpoint is damaged; delete it to restart the run", "%s: bad %s \"%s\"", f->path, key, v);
    *out = x;
    return 0;
}

int checkpoint_load(Learner *l, const char *config_hash, const char *path, RunPosition *pos) {
    StFile f;
    if (st_open(&f, path) != 0) return -1;
    int rc = checkpoint_load_from(l, config_hash, &f, pos);
    st_close(&f);
    return rc;
}

int checkpoint_load_from(Learner *l, const char *config_hash, const StFile *f, RunPosition *pos) {
    const char *path = f->path;
    int rc = -1;
    const char *fmt = st_meta(f, "format"), *ver = st_meta(f, "version"), *hash = st_meta(f, "config_hash");
    if (!fmt || strcmp(fmt, FORMAT) != 0) {
        rsa_fail("pass a checkpoint written by `rsa run`", "%s is not an rsa-repro checkpoint", path);
        goto done;
    }
    if (!ver || strcmp(ver, VERSION) != 0) {
        rsa_fail("this build cannot continue it: rerun the run from the start or use the version that wrote it",
                 "%s has checkpoint format version %s, this build reads %s", path, ver ? ver : "?", VERSION);
        goto done;
    }
    if (!hash || strcmp(hash, config_hash) != 0) {
        rsa_fail("the experiment changed since it was written: its run directory belongs to the old config",
                 "%s was written for config %s, this run is config %s", path, hash ? hash : "?", config_hash);
        goto done;
    }
    int64_t step, epoch, in_epoch;
    if (meta_int(f, "step", &step) || meta_int(f, "epoch", &epoch) || meta_int(f, "step_in_epoch", &in_epoch))
        goto done;
    if (epoch > INT_MAX || in_epoch > INT_MAX) {
        rsa_fail("the checkpoint is damaged; delete it to restart the run", "%s: epoch %" PRId64
                 " / step in epoch %" PRId64 " out of range", path, epoch, in_epoch);
        goto done;
    }
    if (model_state_load(l->online, f, "", "", true) || (l->target && model_state_load(l->target, f, "", "", true)))
        goto done;
    Model *m = l->online;
    float *mom = calloc(m->n_weights ? m->n_weights : 1, sizeof(float));
    if (!mom) rsa_fatal("free memory", "out of memory");
    char name[2 * MODEL_NAME_BYTES];
    for (int i = 0; i < m->n_params; i++) {
        snprintf(name, sizeof name, "optimizer.momentum.%s", m->params[i].name);
        if (st_read(f, name, ST_F32, m->params[i].ndim, m->params[i].shape, mom + m->params[i].offset) != 0) {
            free(mom);
            goto done;
        }
    }
    m->be->upload(l->opt.momentum_buf, mom, sizeof(float) * m->n_weights);
    free(mom);
    if (l->queue) {
        int64_t qshape[2] = {l->cfg->queue_size, l->out_dim}, next;
        if (st_read(f, "moco.queue", ST_F32, 2, qshape, l->queue) != 0 || meta_int(f, "queue_next", &next) != 0)
            goto done;
        if (next >= l->cfg->queue_size) {
            rsa_fail("the checkpoint is damaged; delete it to restart the run",
                     "%s: queue_next %" PRId64 " is outside the queue of %d keys", path, next, l->cfg->queue_size);
            goto done;
        }
        l->queue_next = next;
    }
    if (l->scaler.on) {
        const char *scale = st_meta(f, "loss_scale");
        char *end = NULL;
        double s = scale ? strtod(scale, &end) : 0;
        if (!scale || *end || !(s > 0) || !isfinite(s)) {
            rsa_fail("the checkpoint is damaged; delete it to restart the run",
                     "%s: no valid loss_scale (an fp16 run writes one)", path);
            goto done;
        }
        if (meta_int(f, "loss_scale_good_steps", &l->scaler.good_steps) ||
            meta_int(f, "loss_scale_skipped", &l->scaler.skipped))
            goto done;
        l->scaler.scale = s;
    }
    l->step = step;
    pos->epoch = (int)epoch, pos->step_in_epoch = in_epoch;
    const char *secs = st_meta(f, "train_seconds");
    pos->train_seconds = secs ? atof(secs) : 0;
    rc = 0;
done:
    if (rc) rsa_error_context("resuming from %s", path);
    return rc;
}

int checkpoint_export_torchvision(const char *checkpoint_path, const char *out_path) {
    StFile f;
    if (st_open(&f, checkpoint_path) != 0) return -1;
    StWriter *w = st_writer_new();
    int n = 0;
    for (int i = 0; i < f.n_tensors; i++) {
        const StTensor *t = &f.tensors[i];
        if (strncmp(t->name, "encoder_q.", 10) != 0) continue;
        st_add(w, t->name + 10, t->dtype, t->ndim, t->shape, st_data(&f, t));
        n++;
    }
    int rc = n ? st_write(w, out_path)
               : rsa_fail("export a checkpoint of a BYOL/RSA run", "%s holds no encoder_q.* tensors", checkpoint_path);
    st_writer_free(w);
    st_close(&f);
    return rc;
}
