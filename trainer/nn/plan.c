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

/* What one tensor's buffers need, before packing. Times as in plan.h; a span with start > end is empty. */
typedef struct {
    int prod;                     /* producing node (-1: none) */
    size_t size;                  /* floats at max_batch */
    int last_fwd;                 /* last forward reader (or the producer) */
    int first_bwd, last_bwd;      /* backward steps that read it */
    int first_consumer, last_consumer; /* nodes that read it in forward (-1: none) */
    int uses;                     /* how many node inputs it is (each sends a gradient back) */
    bool candidate;               /* could be rebuilt in backward instead of kept */
} TensorUse;

/* order[0..k) largest first, then earliest: a stable insertion sort. */
static void by_size(const TensorUse *use, int *order, int k) {
    for (int i = 1; i < k; i++)
        for (int j = i; j > 0 && use[order[j]].size > use[order[j - 1]].size; j--) {
            int tmp = order[j];
            order[j] = order[j - 1], order[j - 1] = tmp;
        }
}

/* Whether the workspace holds t at all (the model's input is the caller's). */
static bool planned(const Model *m, const TensorUse *u) {
    return u->prod >= 0 && m->nodes[u->prod].kind != NODE_INPUT;
}

/* Whether t may be kept as a 16-bit copy: values rounded to the model's format, read again in backward. */
static bool keepable16(const Model *m, const TensorUse *u, int t, bool with_grad, PlanMode mode) {
    return with_grad && mode != PLAN_KEEP_ALL && m->precision != PRECISION_FP32 && m->saved_16bit && planned(m, u) &&
           !m->tensors[t].output;
}

static bool rebuildable_kind(const Model *m, const TensorUse *u, int t) {
    if (u->prod < 0 || m->tensors[t].output) return false;
    NodeKind k = m->nodes[u->prod].kind;
    return k == NODE_BN || k == NODE_ADD;
}

/* The tensors a rebuild of t reads: a BN output's input, an add's two inputs. */
static int rebuild_deps(const Model *m, const TensorUse *u, int deps[2]) {
    const Node *nd = &m->nodes[u->prod];
    deps[0] = nd->in[0], deps[1] = nd->in[1];
    return nd->kind == NODE_ADD ? 2 : 1;
}

/* The intervals of every buffer when the tensors in `rebuild` are rebuilt (set on entry for the chosen ones; their
 * rebuildable inputs that nobody else reads in backward are added, since keeping them would cost memory and
 * rebuilding them one cheap pass) and those in `in16` (and not rebuilt) kept in 16 bits where they outlive their
 * forward readers. Returns how many intervals it wrote. */
static int intervals(const Model *m, const TensorUse *use, bool with_grad, PlanMode mode, bool *rebuild,
                     const bool *in16, MemPlan *p, Interval *iv) {
    const int T = m->n_tensors, N = m->n_nodes, END = 2 * N;
    const size_t nt = T > 0 ? (size_t)T : 1;
    int *rb_start = malloc(sizeof(int) * nt), *rb_end = malloc(sizeof(int) * nt), *keep_end = malloc(sizeof(int) * nt);
    if (!rb_start || !rb_end || !keep_end) rsa_fatal("free memory", "out of memory");
    for (int t = 0; t < T; t++) {
        rb_start[t] = use[t].first_bwd, rb_end[t] = use[t].last_bwd;
        keep_end[t] = use[t].last_bwd > use[t].last_fwd ? use[t].last_bwd : use[t].last_fwd;
    }
    /* A rebuild at time s reads its inputs then: they are rebuilt by then too, or kept until then. Inputs come
     * before the tensor, so one sweep from the last tensor covers chains (a block output rebuilt from the one
     * before it). */
    for (int t = T - 1; t >= 0; t--) {
        if (!rebuild[t] || rb_start[t] > rb_end[t]) continue;
        int s = rb_start[t], deps[2];
        for (int k = rebuild_deps(m, &use[t], deps) - 1; k >= 0; k--) {
            int d = deps[k];
            if (d < 0 || !planned(m, &use[d])) continue;
            if (rebuildable_kind(m, &use[d], d) && use[d].first_bwd > use[d].last_bwd) rebuild[d] = true;
            if (rebuild[d] || in16[d]) { /* read where backward rebuilds or widens it */
                if (s < rb_start[d]) rb_start[d] = s;
                if (s > rb_end[d]) rb_end[d] = s;
            } else if (s > keep_end[d]) {
                keep_end[d] = s;
            }
        }
    }
    int n = 0;
    for (int t = 0; t < T; t++) {
        p->act[t] = p->act_bwd[t] = p->grad[t] = p->grad_sum[t] = p->copy16[t] = PLAN_NONE;
        const TensorUse *u = &use[t];
        if (!planned(m, u)) continue;
        if (m->tensors[t].output || mode == PLAN_KEEP_ALL) {
            iv[n++] = (Interval){&p->act[t], u->size, u->prod, END};
        } else if (rebuild[t]) {
            iv[n++] = (Interval){&p->act[t], u->size, u->prod, u->last_fwd};
            if (rb_start[t] <= rb_end[t]) iv[n++] = (Interval){&p->act_bwd[t], u->size, rb_start[t], rb_end[t]};
        } else if (in16[t] && rb_start[t] <= rb_end[t] && rb_end[t] > u->last_fwd) {
            iv[n++] = (Interval){&p->act[t], u->size, u->prod, u->last_fwd};
            iv[n++] = (Interval){&p->copy16[t], rounded((u->size + 1) / 2), u->prod, rb_end[t]};
            iv[n++] = (Interval){&p->act_bwd[t], u->size, rb_start[t], rb_end[t]};
        } else {
            iv[n++] = (Interval){&p->act[t], u->size, u->prod, keep_end[t]};
        }
        if (with_grad && m->tensors[t].needs_grad) {
            int start = u->last_consumer >= 0 ? END - 1 - u->last_consumer : END - 1 - u->prod;
            iv[n++] = (Interval){&p->grad[t], u->size, start, END - 1 - u->prod};
            /* the second and later gradients arrive in a buffer of their own and are added in at once */
            if (u->uses > 1) iv[n++] = (Interval){&p->grad_sum[t], u->size, start, END - 1 - u->first_consumer};
        }
    }
    free(rb_start);
    free(rb_end);
    free(keep_end);
    return n;
}

static size_t plan_with(const Model *m, const TensorUse *use, bool with_grad, PlanMode mode, const bool *chosen,
                        const bool *in16, MemPlan *p, Interval *iv) {
    const size_t nt = m->n_tensors > 0 ? (size_t)m->n_tensors : 1;
    bool *rebuild = malloc(sizeof(bool) * nt);
    if (!rebuild) rsa_fatal("free memory", "out of memory");
    memcpy(rebuild, chosen, sizeof(bool) * nt);
    int n = intervals(m, use, with_grad, mode, rebuild, in16, p, iv);
    free(rebuild);
    return pack(iv, n);
}

void plan_make(const Model *m, bool with_grad, PlanMode mode, MemPlan *p) {
    const int N = m->n_nodes, T = m->n_tensors, END = 2 * N;
    const size_t nt = T > 0 ? (size_t)T : 1;
    p->act = malloc(sizeof(long) * nt);
    p->act_bwd = malloc(sizeof(long) * nt);
    p->grad = malloc(sizeof(long) * nt);
    p->grad_sum = malloc(sizeof(long) * nt);
    p->copy16 = malloc(sizeof(long) * nt);
    Interval *iv = calloc(5 * nt, sizeof *iv);
    TensorUse *use = calloc(nt, sizeof *use);
    bool *chosen = calloc(nt, sizeof *chosen), *in16 = calloc(nt, sizeof *in16);
    int *order = malloc(sizeof(int) * nt);
    if (!p->act || !p->act_bwd || !p->grad || !p->grad_sum || !p->copy16 || !iv || !use || !chosen || !in16 || !order)
        rsa_fatal("free memory", "out of memory");
    p->unplanned = 0;
    p->rebuilt = p->n_copy16 = 0;
    for (int t = 0; t < T; t++) {
        TensorUse *u = &use[t];
        u->prod = producer(m, t);
        u->size = rounded(model_tensor_numel(m, t, m->max_batch));
        u->last_fwd = u->prod, u->first_bwd = END, u->last_bwd = -1, u->first_consumer = u->last_consumer = -1;
        if (!planned(m, u)) continue;
        for (int i = 0; i < N; i++) {
            const Node *nd = &m->nodes[i];
            bool consumes = nd->in[0] == t || nd->in[1] == t;
            if (consumes) {
                u->last_fwd = i, u->last_consumer = i;
                if (u->first_consumer < 0) u->first_consumer = i;
                u->uses += (nd->in[0] == t) + (nd->in[1] == t);
            }
            bool reads = (consumes && reads_input_in_backward(nd) && nd->in[0] == t) ||
                         (i == u->prod && reads_output_in_backward(nd));
            if (reads && with_grad) {
                int tb = END - 1 - i;
                if (tb < u->first_bwd) u->first_bwd = tb;
                if (tb > u->last_bwd) u->last_bwd = tb;
            }
        }
        u->candidate = with_grad && mode != PLAN_KEEP_ALL && rebuildable_kind(m, u, t) && u->first_bwd <= u->last_bwd;
        p->unplanned += u->size * (with_grad && m->tensors[t].needs_grad ? 2 : 1);
    }
    if (!with_grad || mode == PLAN_KEEP_ALL) {
        p->floats = plan_with(m, use, with_grad, mode, chosen, in16, p, iv);
    } else if (mode == PLAN_REBUILD_ALL) {
        for (int t = 0; t < T; t++) chosen[t] = use[t].candidate, in16[t] = keepable16(m, &use[t], t, with_grad, mode);
        p->floats = plan_with(m, use, with_grad, mode, chosen, in16, p, iv);
    } else if (m->precision == PRECISION_FP32 || !m->saved_16bit) {
        /* Start from rebuilding every candidate, then keep instead each one whose rebuild does not make the block
         * smaller (largest first): rebuilding costs a pass over the tensor, so it must buy memory. */
        int k = 0;
        for (int t = 0; t < T; t++)
            if (use[t].candidate) chosen[t] = true, order[k++] = t;
        by_size(use, order, k);
        size_t best = plan_with(m, use, with_grad, mode, chosen, in16, p, iv);
        for (int i = 0; i < k; i++) {
            chosen[order[i]] = false;
            size_t size = plan_with(m, use, with_grad, mode, chosen, in16, p, iv);
            if (size < best)
                best = size;
            else
                chosen[order[i]] = true;
        }
        p->floats = plan_with(m, use, with_grad, mode, chosen, in16, p, iv);
    } else {
        /* bf16, fp16: start from a 16-bit copy of every tensor that can have one, then (largest first) rebuild
         * each candidate instead where the block does not grow (one pass instead of two: narrowing and widening),
         * keep each copied one in full where the block does not grow, and copy again each kept one where that
         * makes the block smaller. Starting from the rebuilds instead ends larger: a chain of rebuilt block outputs
         * is rebuilt all at once where its head is read, and held from there. */
        int k = 0;
        for (int t = 0; t < T; t++)
            if (keepable16(m, &use[t], t, with_grad, mode)) in16[t] = true, order[k++] = t;
        by_size(use, order, k);
        size_t best = plan_with(m, use, with_grad, mode, chosen, in16, p, iv);
        for (int i = 0; i < k; i++) {
            int t = order[i];
            if (!use[t].candidate) continue;
            chosen[t] = true, in16[t] = false;
            size_t size = plan_with(m, use, with_grad, mode, chosen, in16, p, iv);
            if (size <= best)
                best = size;
            else
                chosen[t] = false, in16[t] = true;
        }
        for (int pass = 0; pass < 2; pass++)
            for (int i = 0; i < k; i++) {
                int t = order[i];
                if (chosen[t] || in16[t] != (pass == 0)) continue;
                in16[t] = !in16[t];
                size_t size = plan_with(m, use, with_grad, mode, chosen, in16, p, iv);
                if (pass == 0 ? size <= best : size < best)
                    best = size;
                else
                    in16[t] = !in16[t];
            }
        p->floats = plan_with(m, use, with_grad, mode, chosen, in16, p, iv);
    }
    for (int t = 0; t < T; t++) p->rebuilt += p->act_bwd[t] != PLAN_NONE && p->copy16[t] == PLAN_NONE;
    for (int t = 0; t < T; t++) p->n_copy16 += p->copy16[t] != PLAN_NONE;
    free(order);
    free(in16);
    free(chosen);
    free(use);
    free(iv);
}

void plan_free(MemPlan *p) {
    free(p->copy16);
    free(p->act);
    free(p->act_bwd);
    free(p->grad);
    free(p->grad_sum);
    memset(p, 0, sizeof *p);
}
