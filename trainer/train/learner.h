/* A learner holds what one optimisation step touches: the online network (encoder_q + encoder_q_head + pred, the
 * official code's names), the EMA target (encoder_k + encoder_k_head), the optimiser and the step counter k.
 * Its step computes exactly the official code's step for the configured method:
 *
 * RSA (methods/RSA.py), views w1, w2, a1, a2:
 *   k += 1; target = tau(k) target + (1 - tau(k)) online            (encoder and projector; BN buffers not)
 *   p_i = normalize(pred(proj(enc(a_i))))   online, train-mode BN, a1 then a2
 *   z_i = normalize(proj_t(enc_t(w_i)))     target, train-mode BN, w1 then w2, no gradient
 *   loss = mean(beta d(p1, sg p2) + (1 - beta) d(p1, z2) + beta d(p2, sg p1) + (1 - beta) d(p2, z1)),
 *   d(a, b) = 2 - 2 <a, b>, beta = beta(k); backward; optimiser step.
 * BYOL (methods/BYOL.py), views v1, v2: online v1, target v2, online v2, target v1 (that order: BN statistics);
 *   loss = mean(d(p(v1), z(v2)) + d(p(v2), z(v1))).
 * The baselines of Tables 2-3 on the same networks and data code (their heads in nets.h):
 * SimCLR: online encoder + projector on v1 and v2 (two BN batches, as BYOL's), NT-Xent at temperature T.
 * MoCo v2: q = online(v1); momentum update of the key encoder (fixed m = tau_base); k = target(v2); InfoNCE
 *   against a queue of queue_size keys, which then takes k. No shuffling BN (one process; see REPRODUCE.md).
 * Data parallel (learner_set_dist): SimCLR's negatives are the whole batch's (outputs all-gathered, the loss of the
 *   global batch computed on every rank); MoCo's queue takes every rank's keys; so with SyncBN W processes compute
 *   the step of one process with the whole batch, as for the other methods.
 * SimSiam: z_i, p_i from one network on v1 and v2; loss -(cos(p1, sg z2) + cos(p2, sg z1)) / 2; no target.
 * Losses and their gradients with respect to the heads' outputs are computed on the host in double precision
 * (losses.h) from the downloaded outputs; the networks, EMA and optimiser run on the backend.
 * Mixed precision (cfg->precision): both networks round what they write (core/precision.h); with fp16 the loss
 * gradient is scaled and a step whose gradients overflow is skipped (loss_scale.h). */
#ifndef RSA_LEARNER_H
#define RSA_LEARNER_H

#include "../dist/dist.h"
#include "../nn/model.h"
#include "config.h"
#include "loss_scale.h"
#include "optim.h"

typedef struct {
    double loss, loss_w, loss_a; /* RSA: loss_w = mean(d(p1, z2) + d(p2, z1)), loss_a = mean(2 d(p1, p2)) */
    double beta, tau, lr;
    double loss_scale; /* fp16: what the loss gradient was multiplied by (1 otherwise) */
    bool skipped;      /* fp16: a gradient overflowed, so the optimiser step was skipped (loss_scale.h) */
} StepMetrics;

typedef struct {
    const TrainConfig *cfg;
    const Backend *be;
    Model *online, *target;              /* target NULL for SimCLR and SimSiam */
    int feature, online_out, target_out; /* tensors: encoder feature, the online output the loss reads (predictor,
                                            or projector without a predictor), target projection */
    int online_proj;                     /* SimSiam: the projector output z */
    int out_dim;                         /* width of the loss inputs */
    float *queue;                        /* MoCo: queue_size normalised keys (host), oldest at queue_next */
    int64_t queue_next;
    Dist *dist;                          /* data-parallel world (a world of one by default) */
    BnSync bn_sync;                      /* SyncBN through dist, when asked for */
    float *host_grads;                   /* gradients on the host for the all-reduce (device backends) */
    Workspace *ws[2];                    /* online passes kept for backward (ws[1] NULL with low_memory) */
    Workspace *ws_pass;                  /* low_memory: the second online pass, outputs only; shares target_ws's
                                          * memory (model.h: workspaces_new_shared) */
    const float *pass_input[2];          /* the online passes' inputs (backend memory) in this step */
    Workspace *target_ws;
    Optimizer opt;
    LossScaler scaler;   /* fp16's loss scale (off at fp32 and bf16) */
    int64_t step;        /* k: steps taken (the official num_step) */
    int64_t total_steps; /* K */
    float *dev_views[4]; /* device copies of the views when the backend does not compute in host memory */
    float *host_out[4], *host_grad[2], *dev_grad[2];
    float *gathered[5];  /* data-parallel SimCLR (Z1, Z2, dZ1, dZ2, by rank) and MoCo (keys, by rank): whole batch */
} Learner;

/* Builds the networks for batches of `batch` images and initialises them from cfg->seed (the target starts as a
 * copy of the online encoder and projector, as the official code does). NULL with rsa_fail. */
Learner *learner_new(const TrainConfig *cfg, const Backend *be, int batch, int64_t total_steps);
void learner_free(Learner *l);

/* Joins a data-parallel world: gradients are averaged over its processes after each backward pass, and with
 * sync_bn the online and target networks' batch norms use the statistics of the whole global batch (SyncBN). Each
 * process steps on its own share of the global batch. -1 with rsa_fail for methods whose loss needs the other
 * processes' samples (SimCLR's negatives, MoCo's keys), which are not exchanged yet. */
int learner_set_dist(Learner *l, Dist *d, bool sync_bn);

/* Loads starting weights (TrainConfig.init_from): official names load every online tensor the file has (at least the
 * encoder), torchvision names the encoder; the target is then the online network's copy. -1 with rsa_fail. */
int learner_load_init(Learner *l, const char *path);

/* One step on n images; views[v] are NCHW float in host memory, in the method's view order. */
int learner_step(Learner *l, float *const *views, int n, double lr, StepMetrics *out);

/* Data parallel: checks that every process holds the same training state (the online and target weights, the
 * momentum buffers, MoCo's queue, the fp16 loss scale and the step count) bit for bit, as the all-reduces promise.
 * Collective: every rank calls it at the same step. 0 in a world of one; -1 with rsa_fail (the same on every rank)
 * when some rank differs from rank 0. */
int learner_check_ranks_agree(Learner *l);

#endif
