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

double knn_top1(const Features *bank, const Features *test, int num_classes, int k, double t) {
    RSA_ASSERT(bank->dim == test->dim && num_classes > 0);
    if (k > bank->n) k = (int)bank->n;
    const int rows = 256; /* test rows per similarity block */
    float *sim = malloc(sizeof(float) * (size_t)rows * bank->n);
    Neighbour *heap = malloc(sizeof(Neighbour) * (size_t)(k ? k : 1));
    double *votes = malloc(sizeof(double) * (size_t)num_classes);
    if (!sim || !heap || !votes) rsa_fatal("free memory", "out of memory");
    int64_t correct = 0;
    for (int64_t r0 = 0; r0 < test->n; r0 += rows) {
        int nr = (int)(test->n - r0 < rows ? test->n - r0 : rows);
        /* sim = test_rows . bank^T (oneDNN sgemm on the host, whatever backend trained the model) */
        linear_cpu_forward(nr, test->dim, (int)bank->n, test->x + (size_t)r0 * test->dim, bank->x, NULL, sim);
        for (int r = 0; r < nr; r++) {
            const float *s = sim + (size_t)r * bank->n;
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
            int best = 0;
            for (int c = 1; c < num_classes; c++)
                if (votes[c] > votes[best]) best = c;
            correct += best == test->label[r0 + r];
        }
    }
    free(sim), free(heap), free(votes);
    return test->n ? 100.0 * (double)correct / (double)test->n : 0;
}
