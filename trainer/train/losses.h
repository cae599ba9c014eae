/* The methods' losses on the host, in double precision, from the networks' raw outputs (n rows of d floats each,
 * before L2 normalisation): each returns the loss terms and writes the gradient with respect to those raw outputs,
 * the normalisation's backward included. They are small next to the networks (n x d with d = 128..2048; the
 * InfoNCE queue product is the largest at n x K x d). */
#ifndef RSA_LOSSES_H
#define RSA_LOSSES_H

#include <stdint.h>

typedef struct {
    double loss, loss_w, loss_a;
} LossTerms;

/* BYOL/RSA (methods/RSA.py): q1, q2 online predictions; t1, t2 target projections (q1 pairs with t2, q2 with t1):
 * mean over rows of beta d(p1, sg p2) + (1 - beta) d(p1, z2) + beta d(p2, sg p1) + (1 - beta) d(p2, z1),
 * d(a, b) = 2 - 2 <a, b> on normalised rows; BYOL is beta = 0. loss_w = mean(d(p1, z2) + d(p2, z1)),
 * loss_a = mean(d(p1, p2) + d(p2, p1)). */
void loss_byol_rsa(int n, int d, double beta, const float *q1, const float *q2, const float *t1, const float *t2,
                   float *dq1, float *dq2, LossTerms *out);

/* SimCLR's NT-Xent (Chen et al. 2020, eq. 1): the 2n normalised projections; each row's positive is the other view
 * of its image, its negatives the other 2n - 2 rows; softmax cross-entropy at temperature tau, mean over 2n. */
void loss_ntxent(int n, int d, double tau, const float *z1, const float *z2, float *dz1, float *dz2, LossTerms *out);

/* MoCo's InfoNCE (He et al. 2020, Alg. 1): logits [q.k, q.queue^T] / tau for normalised q and k (k is a constant),
 * label 0, mean cross-entropy. queue: K normalised rows of d. Writes dq only. */
void loss_infonce(int n, int d, double tau, const float *q, const float *k, const float *queue, int64_t K, float *dq,
                  LossTerms *out);

/* SimSiam (Chen & He 2021, eq. 3-4): -(cos(p1, sg z2) + cos(p2, sg z1)) / 2, mean over rows. Gradients go to the
 * predictions p only. */
void loss_simsiam(int n, int d, const float *p1, const float *p2, const float *z1, const float *z2, float *dp1,
                  float *dp2, LossTerms *out);

/* Normalises rows of q into p (doubles) and keeps the norms (torch.nn.functional.normalize, eps 1e-12). */
void rows_normalize(int n, int d, const float *q, double *p, double *norm);

#endif
