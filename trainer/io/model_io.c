#include "model_io.h"

#include "../core/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool model_state_rename(const char *name, const char *from, const char *to, char *out, size_t size) {
    size_t k = strlen(from);
    if (strncmp(name, from, k) != 0) return false;
    int len = snprintf(out, size, "%s%s", to, name + k);
    return len >= 0 && (size_t)len < size;
}

/* A BN's buffer name: its module path ("encoder_q.layer1.0.bn1") and the leaf. */
static void bn_entry(const Model *m, int b, const char *leaf, char *out, size_t size) {
    snprintf(out, size, "%s.%s", m->nodes[m->bns[b].node].name, leaf);
}

void model_state_add(const Model *m, StWriter *w, const char *from, const char *to, ModelState *st) {
    st->n_w = m->n_weights, st->n_buf = m->n_buf;
    st->w = malloc(sizeof(float) * (st->n_w ? st->n_w : 1));
    st->buf = malloc(sizeof(float) * (st->n_buf ? st->n_buf : 1));
    st->counts = malloc(sizeof(int64_t) * (size_t)(m->n_bns ? m->n_bns : 1));
    if (!st->w || !st->buf || !st->counts) rsa_fatal("free memory", "out of memory");
    m->be->download(st->w, m->w, sizeof(float) * st->n_w);
    m->be->download(st->buf, m->buf, sizeof(float) * st->n_buf);
    char name[2 * MODEL_NAME_BYTES];
    /* module order: each node's parameters, then (for BN) its buffers, as a torch state_dict lists them */
    for (int i = 0; i < m->n_nodes; i++) {
        const Node *nd = &m->nodes[i];
        int ps[2] = {nd->weight, nd->bias};
        for (int k = 0; k < 2; k++) {
            if (ps[k] < 0) continue;
            const ParamInfo *p = &m->params[ps[k]];
            if (model_state_rename(p->name, from, to, name, sizeof name))
                st_add(w, name, ST_F32, p->ndim, p->shape, st->w + p->offset);
        }
        if (nd->kind != NODE_BN) continue;
        const BnInfo *b = &m->bns[nd->bn];
        int64_t shape[1] = {b->c};
        const char *leaves[2] = {"running_mean", "running_var"};
        for (int k = 0; k < 2; k++) {
            char full[2 * MODEL_NAME_BYTES];
            bn_entry(m, nd->bn, leaves[k], full, sizeof full);
            if (model_state_rename(full, from, to, name, sizeof name))
                st_add(w, name, ST_F32, 1, shape, st->buf + b->stat_offset + (size_t)k * b->c);
        }
        char full[2 * MODEL_NAME_BYTES];
        bn_entry(m, nd->bn, "num_batches_tracked", full, sizeof full);
        st->counts[nd->bn] = b->batches_tracked;
        if (model_state_rename(full, from, to, name, sizeof name)) st_add(w, name, ST_I64, 0, NULL, &st->counts[nd->bn]);
    }
}

void model_state_free(ModelState *st) {
    free(st->w);
    free(st->buf);
    free(st->counts);
    memset(st, 0, sizeof *st);
}

int model_state_load(Model *m, const StFile *f, const char *from, const char *to, bool allow_extra) {
    float *hw = malloc(sizeof(float) * (m->n_weights ? m->n_weights : 1));
    float *hb = malloc(sizeof(float) * (m->n_buf ? m->n_buf : 1));
    bool *used = calloc((size_t)(f->n_tensors ? f->n_tensors : 1), sizeof *used);
    if (!hw || !hb || !used) rsa_fatal("free memory", "out of memory");
    m->be->download(hw, m->w, sizeof(float) * m->n_weights);
    m->be->download(hb, m->buf, sizeof(float) * m->n_buf);
    int64_t *counts = malloc(sizeof(int64_t) * (size_t)(m->n_bns ? m->n_bns : 1));
    if (!counts) rsa_fatal("free memory", "out of memory");
    char name[2 * MODEL_NAME_BYTES];
    int rc = 0;
#define MARK_USED(nm)                                                                                              \
    do {                                                                                                           \
        const StTensor *t_ = st_find(f, nm);                                                                       \
        if (t_) used[t_ - f->tensors] = true;                                                                      \
    } while (0)
    for (int i = 0; i < m->n_params && rc == 0; i++) {
        const ParamInfo *p = &m->params[i];
        if (!model_state_rename(p->name, from, to, name, sizeof name)) continue;
        rc = st_read(f, name, ST_F32, p->ndim, p->shape, hw + p->offset);
        MARK_USED(name);
    }
    for (int b = 0; b < m->n_bns && rc == 0; b++) {
        const BnInfo *bi = &m->bns[b];
        int64_t shape[1] = {bi->c};
        const char *leaves[2] = {"running_mean", "running_var"};
        for (int k = 0; k < 2 && rc == 0; k++) {
            char full[2 * MODEL_NAME_BYTES];
            bn_entry(m, b, leaves[k], full, sizeof full);
            if (!model_state_rename(full, from, to, name, sizeof name)) continue;
            rc = st_read(f, name, ST_F32, 1, shape, hb + bi->stat_offset + (size_t)k * bi->c);
            MARK_USED(name);
        }
        char full[2 * MODEL_NAME_BYTES];
        bn_entry(m, b, "num_batches_tracked", full, sizeof full);
        counts[b] = bi->batches_tracked;
        if (rc == 0 && model_state_rename(full, from, to, name, sizeof name)) {
            rc = st_read(f, name, ST_I64, 0, NULL, &counts[b]);
            MARK_USED(name);
        }
    }
#undef MARK_USED
    for (int i = 0; i < f->n_tensors && rc == 0 && !allow_extra; i++) {
        const char *tn = f->tensors[i].name;
        if (used[i] || strncmp(tn, to, strlen(to)) != 0) continue;
        rc = rsa_fail("the file holds a different architecture; check the backbone and head sizes",
                      "%s: tensor \"%s\" has no place in this model", f->path, tn);
    }
    if (rc == 0) {
        m->be->upload(m->w, hw, sizeof(float) * m->n_weights);
        m->be->upload(m->buf, hb, sizeof(float) * m->n_buf);
        for (int b = 0; b < m->n_bns; b++) m->bns[b].batches_tracked = counts[b];
        model_weights_changed(m);
    }
    free(hw);
    free(hb);
    free(used);
    free(counts);
    return rc;
}
