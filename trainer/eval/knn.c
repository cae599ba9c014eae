#include "knn.h"

#include "../core/error.h"
#include "../ops/cpu/ops_cpu.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    float sim;
    int64_t index;
} Neighbour;

/* Heap order: the root is the WORST kept neighbour (smallest similarity, then largest index). */
static bool worse(const Neighbour *a, const Neighbour *b) {
    return a->sim < b->sim || (a->sim == b->sim && a->index > b->index);
}

static void sift_down(Neighbour *h, int n, int i) {
    for (;;) {
        int l = 2 * i + 1, r = l + 1, w = i;
        if (l < n && worse(&h[l], &h[w])) w = l;
        if (r < n && worse(&h[r], &h[w])) w = r;
        if (w == i) return;
        Neighbour t = h[i];
        h[i] = h[w], h[w] = t, i = w;
    }
}

/* One query row's vote over its similarities s[0..n) to the bank. */
static int32_t predict_row(const float *s, const Features *bank, int num_classes, int k, double t, Neighbour *heap,
                           double *votes) {
    int kept = 0;
    for (int64_t j = 0; j < bank->n; j++) {
        Neighbour c = {s[j], j};
        if (kept < k) {
            heap[kept++] = c;
            if (kept == k)
                for (int i = k / 2 - 1; i >= 0; i--) sift_down(heap, k, i);
        } else if (worse(&heap[0], &c)) {
            heap[0] = c;
            sift_down(heap, k, 0);
        }
    }
    memset(votes, 0, sizeof(double) * (size_t)num_classes);
    for (int i = 0; i < kept; i++) {
        int32_t label = bank->label[heap[i].index];
        if (label >= 0 && label < num_classes) votes[label] += exp(heap[i].sim / t);
    }
    int32_t best = 0;
    for (int c = 1; c < num_classes; c++)
        if (votes[c] > votes[best]) best = c;
    return best;
}

void knn_predict(const Features *bank, const Features *test, int num_classes, int k, double t, int32_t *pred) {
    RSA_ASSERT(bank->dim == test->dim && num_classes > 0 && k >= 1);
    if (k > bank->n) k = (int)bank->n;
    const int rows = 256; /* test rows per similarity block */
    float *sim = malloc(sizeof(float) * (size_t)rows * (size_t)(bank->n ? bank->n : 1));
    if (!sim) rsa_fatal("free memory", "out of memory for %d x %lld similarities", rows, (long long)bank->n);
    for (int64_t r0 = 0; r0 < test->n; r0 += rows) {
        int nr = (int)(test->n - r0 < rows ? test->n - r0 : rows);
        /* sim = test_rows . bank^T (oneDNN sgemm on the host, whatever backend trained the model) */
        linear_cpu_forward(nr, test->dim, (int)bank->n, test->x + (size_t)r0 * test->dim, bank->x, NULL, sim);
        /* the rows' votes are independent: each thread keeps its own heap */
#pragma omp parallel
        {
            Neighbour *heap = malloc(sizeof(Neighbour) * (size_t)(k ? k : 1));
            double *votes = malloc(sizeof(double) * (size_t)num_classes);
            if (!heap || !votes) rsa_fatal("free memory", "out of memory");
#pragma omp for schedule(static)
            for (int r = 0; r < nr; r++)
                pred[r0 + r] = predict_row(sim + (size_t)r * bank->n, bank, num_classes, k, t, heap, votes);
            free(heap), free(votes);
        }
    }
    free(sim);
}

double knn_top1(const Features *bank, const Features *test, int num_classes, int k, double t) {
    int32_t *pred = malloc(sizeof(int32_t) * (size_t)(test->n ? test->n : 1));
    if (!pred) rsa_fatal("free memory", "out of memory");
    knn_predict(bank, test, num_classes, k, t, pred);
    int64_t correct = 0;
    for (int64_t r = 0; r < test->n; r++) correct += pred[r] == test->label[r];
    free(pred);
    return test->n ? 100.0 * (double)correct / (double)test->n : 0;
}
