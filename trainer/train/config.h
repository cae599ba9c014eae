/* Everything that defines one training run, as plain values. The Lua layer (lua/) fills it from an experiment file
 * and records it in the run store; the trainer reads nothing else (no environment variables, no global state), so
 * the same config and seed give the same run. */
#ifndef RSA_TRAIN_CONFIG_H
#define RSA_TRAIN_CONFIG_H

#include "../data/data.h"
#include "../nn/nets.h"

#include <stdbool.h>
#include <stdint.h>

typedef enum { METHOD_RSA, METHOD_BYOL, METHOD_SIMCLR, METHOD_MOCOV2, METHOD_SIMSIAM } MethodKind;
typedef enum { BETA_DECAY, BETA_FIXED, BETA_TABLE } BetaSchedule;
typedef enum { OPTIM_SGD, OPTIM_LARS } OptimKind;
typedef enum { LR_COSINE_EPOCH, LR_COSINE_STEP, LR_TABLE } LrSchedule;
typedef enum { LR_SCALE_FLOOR, LR_SCALE_LINEAR } LrScaling;
typedef enum { LINEAR_SMALL, LINEAR_MEANSHIFT } LinearProtocol;
enum { LOADER_THREADS_AUTO = -1 }; /* TrainConfig.loader_threads: loader_threads_auto's count (data.h) */

typedef struct {
    /* data */
    char dataset[32];    /* cifar10 cifar100 stl10 tinyimagenet imagenet100 imagenet fashionmnist */
    char data_root[512]; /* "" : $RSA_DATA or data/ */
    int64_t subset;      /* pretrain on this many images (a fixed random subset, the same for every seed); 0: all */
    int64_t eval_subset; /* linear evaluation and kNN bank on this many labelled training images; 0: all */
    int image_size;      /* 0: the data set's (32, 64, 224) */
    int loader_threads;  /* LOADER_THREADS_AUTO, or a count (0: batches made between steps) */

    /* networks */
    ResNetSpec backbone;
    int proj_hidden, proj_out; /* heads: (1024, 128) with ResNet-18, (4096, 256) with ResNet-50 */
    int pred_hidden;           /* SimSiam's predictor bottleneck (512); 0: proj_hidden */

    /* method */
    MethodKind method;
    ViewMode views;       /* RSA: MA; BYOL: AA or AW; baselines: AA */
    double beta_base;     /* RSA */
    BetaSchedule beta_schedule;
    const float *beta_table; /* BETA_TABLE: beta per step (index = step counter - 1), sampled from Lua */
    int64_t beta_table_len;
    double tau_base;      /* BYOL/RSA EMA: tau = 1 - (1 - tau_base)(cos(pi k/K) + 1)/2; MoCo: the fixed momentum m */
    double temperature;   /* SimCLR, MoCo */
    int queue_size;       /* MoCo */

    /* optimisation */
    int epochs, batch;
    OptimKind optimizer;
    double lr;            /* per 256 images; scaled by lr_scaling */
    LrScaling lr_scaling; /* FLOOR: lr * (batch // 256) as the official code; LINEAR: lr * batch / 256 */
    LrSchedule lr_schedule;
    const float *lr_table;  /* LR_TABLE: lr per step */
    int64_t lr_table_len;
    int warmup_epochs;
    double weight_decay, momentum, lars_trust;
    bool decay_1d;        /* apply weight decay to 1-D parameters (biases, BN): the small-data protocol does */
    bool sync_bn;         /* data-parallel runs: BN statistics over the global batch (the official ImageNet-1K setting) */
    int bn_group;         /* pretraining BN statistics over groups of this many images of each process's batch,
                             as that many GPUs without SyncBN would have them; 0: each process's whole batch */

    /* evaluation */
    LinearProtocol linear;
    int linear_epochs, linear_batch;
    double linear_lr;
    int linear_milestones[2];
    bool linear_bn_train;   /* the official code's encoder BN in train mode while fitting the head */
    bool linear_best_epoch; /* also report the best test epoch, as the official code does */
    int knn_every;          /* epochs between kNN monitors; 0: never */
    int knn_k;
    double knn_t;

    /* start from given weights instead of the initialisation: a safetensors file with the official names
     * (encoder_q.*, encoder_q_head.*, pred.*; e.g. a checkpoint or `rsa export`) or torchvision's (conv1.weight, ...:
     * the encoder alone). The target network starts as a copy, as it does from the initialisation. "": none. */
    char init_from[512];

    /* run */
    uint64_t seed;
    char backend[16];        /* cpu, cuda, ref */
    bool tf32;               /* cuda: TF32 tensor-core math in convolutions and linear layers */
    Precision precision;     /* pretraining's networks: fp32 or mixed bf16/fp16 (core/precision.h); fp16 scales the
                                loss (loss_scale.h); evaluation reads fp32 features either way */
    bool deterministic;      /* cuda: deterministic cuDNN algorithms only (else the fastest by timing) */
    bool low_memory;         /* keep one online pass's activations, not two (the second pass runs again) */
    bool saved_16bit;        /* bf16/fp16: activations kept for backward may be 16-bit copies (model.h) */
    bool lowp_convolutions;  /* bf16/fp16: 16-bit convolution kernels where the backend has them (else fp32 on the
                                rounded values) */
    bool lowp_weight_grads;  /* bf16/fp16: convolution and linear weight gradients summed in the format, as
                                autocast (model_set_weight_grad_rounding) */
    int64_t checkpoint_every; /* steps; 0: only at epoch ends */
} TrainConfig;

/* The paper's settings for a data set (README of ../shared/paper): ResNet-18 CIFAR stem or ResNet-50, heads, SGD
 * lr 0.1 (0.2 ImageNet-100), wd 5e-4 (1e-4), cosine, 200 epochs, batch 256, RSA beta decay 0.4, linear protocol. */
int train_config_defaults(TrainConfig *c, const char *dataset);

const char *method_name(MethodKind m);
/* Checks values against each other (lr not scaled to zero, views fit the method, ...). -1 with rsa_fail. */
int train_config_check(const TrainConfig *c);
/* The learning rate after scaling by the batch size. */
double train_config_base_lr(const TrainConfig *c);

#endif
