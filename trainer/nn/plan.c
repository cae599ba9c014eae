#include "plan.h"

#include "../core/error.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    long *offset; /* where to store the result */
    size_t size;  /* floats */
    int start, end; /* inclusive times */
} Interval;

static bool reads_input_in_backward(const Node *nd) {
    return nd->kind == NODE_CONV || nd->kind == NODE_BN || nd->kind == NODE_MAXPOOL || nd->kind == NODE_LINEAR;
}

static bool reads_output_in_backward(const Node *nd) {
    return nd->kind == NODE_RELU || ((nd->kind == NODE_BN || nd->kind == NODE_ADD) && nd->relu);
}

static int producer(const Model *m, int t) {
    for (int i = 0; i < m->n_nodes; i++)
        if (m->nodes[i].out == t) return i;
    return -1;
}

bool plan_recomputable(const Model *m, int t) {
    int p = producer(m, t);
    if (p < 0 || m->nodes[p].kind != NODE_BN || !m->nodes[p].relu || m->tensors[t].output) return false;
    bool consumed = false;
    for (int i = 0; i < m->n_nodes; i++) {
        const Node *nd = &m->nodes[i];
        if (nd->in[0] != t && nd->in[1] != t) continue;
        if (nd->kind != NODE_CONV && nd->kind != NODE_LINEAR) return false;
        consumed = true;
    }
    return consumed;
}

static size_t rounded(size_t floats) { return (floats + 15) / 16 * 16; }

static int by_size_desc(const void *a, const void *b) {
    const Interval *x = a, *y = b;
    if (x->size != y->size) return x->size < y->size ? 1 : -1;
    return x->start - y->start;
}

static int by_offset(const void *a, const void *b) {
    const Interval *x = *(const Interval *const *)a, *y = *(const Interval *const *)b;
    return *x->offset < *y->offset ? -1 : *x->offset > *y->offset;
}

/* Places each interval at the lowest offset where no interval overlapping it in time overlaps it in memory. */
static size_t pack(Interval *iv, int n) {
    qsort(iv, (size_t)n, sizeof *iv, by_size_desc);
    Interval **live = malloc(sizeof *live * (size_t)(n ? n : 1));
    if (!live) rsa_fatal("free memory", "out of memory");
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        int k = 0;
        for (int j = 0; j < i; j++)
            if (iv[j].start <= iv[i].end && iv[i].start <= iv[j].end) live[k++] = &iv[j];
        qsort(live, (size_t)k, sizeof *live, by_offset);
        size_t at = 0;
        for (int j = 0; j < k; j++) {
            size_t lo = (size_t)*live[j]->offset, hi = lo + live[j]->size;
            if (at + iv[i].size <= lo) break;
            if (hi > at) at = hi;
        }
        *iv[i].offset = (long)at;
        if (at + iv[i].size > total) total = at + iv[i].size;
    }
    free(live);
    return total;
}

void plan_make(const Model *m, bool with_grad, bool keep_all, MemPlan *p) {
    const int N = m->n_nodes, T = m->n_tensors, END = 2 * N;
    p->act = malloc(sizeof(long) * (size_t)T);
    p->act_bwd = malloc(sizeof(long) * (size_t)T);
    p->grad = malloc(sizeof(long) * (size_t)T);
    Interval *iv = calloc((size_t)(3 * T + 1), sizeof *iv);
    if (!p->act || !p->act_bwd || !p->grad || !iv) rsa_fatal("free memory", "out of memory");
    int n = 0;
    p->unplanned = 0;
    p->scratch = PLAN_NONE;
    for (int t = 0; t < T; t++) {
        p->act[t] = p->act_bwd[t] = p->grad[t] = PLAN_NONE;
        int prod = producer(m, t);
        if (prod < 0 || m->nodes[prod].kind == NODE_INPUT) continue;
        size_t size = rounded(model_tensor_numel(m, t, m->max_batch));
        /* forward readers, and the backward steps that read this activation */
        int last_fwd = prod, first_bwd_reader = END, last_bwd_reader = -1, last_consumer = -1;
        for (int i = 0; i < N; i++) {
            const Node *nd = &m->nodes[i];
            bool consumes = nd->in[0] == t || nd->in[1] == t;
            if (consumes) last_fwd = i, last_consumer = i;
            bool reads = (consumes && reads_input_in_backward(nd) && nd->in[0] == t) ||
                         (i == prod && reads_output_in_backward(nd));
            if (reads) {
                int tb = END - 1 - i;
                if (tb < first_bwd_reader) first_bwd_reader = tb;
                if (tb > last_bwd_reader) last_bwd_reader = tb;
            }
        }
        bool output = m->tensors[t].output;
        p->unplanned += size * (with_grad && m->tensors[t].needs_grad ? 2 : 1);
        if (keep_all) {
            iv[n++] = (Interval){&p->act[t], size, prod, END};
        } else if (output) {
            iv[n++] = (Interval){&p->act[t], size, prod, END};
        } else if (with_grad && last_bwd_reader >= 0 && plan_recomputable(m, t)) {
            iv[n++] = (Interval){&p->act[t], size, prod, last_fwd};
            iv[n++] = (Interval){&p->act_bwd[t], size, first_bwd_reader, last_bwd_reader};
        } else if (with_grad && last_bwd_reader >= 0) {
            iv[n++] = (Interval){&p->act[t], size, prod, last_bwd_reader};
        } else {
            iv[n++] = (Interval){&p->act[t], size, prod, last_fwd};
        }
        if (with_grad && m->tensors[t].needs_grad) {
            int start = last_consumer >= 0 ? END - 1 - last_consumer : END - 1 - prod;
            iv[n++] = (Interval){&p->grad[t], size, start, END - 1 - prod};
        }
    }
    if (with_grad) iv[n++] = (Interval){&p->scratch, rounded(m->max_tensor), N, END};
    p->floats = pack(iv, n);
    free(iv);
}

void plan_free(MemPlan *p) {
    free(p->act);
    free(p->act_bwd);
    free(p->grad);
    memset(p, 0, sizeof *p);
}
