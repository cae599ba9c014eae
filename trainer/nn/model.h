/* A model is a straight list of nodes (conv, batch norm, ReLU, pooling, linear, residual add) over numbered
 * tensors, built once, with its parameters, gradients and batch-norm buffers in three flat arrays on the backend.
 * Activations live in a Workspace: one per independent forward pass that backward will need (RSA's online network
 * keeps two, one per aggressive view; both share the model's parameters and accumulate into its gradients).
 *
 * All memory is sized when the model is finalised for a maximum batch; a forward or backward pass allocates
 * nothing. Parameter names follow torchvision (`layer1.0.conv1.weight`) under an optional prefix
 * (`encoder_q.`), so checkpoints load into PyTorch and back. */
#ifndef RSA_MODEL_H
#define RSA_MODEL_H

#include "../backend/backend.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum { MODEL_NAME_BYTES = 96 };

typedef enum { NODE_INPUT, NODE_CONV, NODE_BN, NODE_RELU, NODE_MAXPOOL, NODE_GAP, NODE_LINEAR, NODE_ADD } NodeKind;

typedef struct {
    int c, h, w; /* one sample */
    Layout layout;
    bool needs_grad; /* some parameter lies upstream */
    bool output;     /* read by the caller after forward: always kept (see plan.h) */
} TensorDesc;

typedef struct {
    char name[MODEL_NAME_BYTES];
    int ndim;
    int64_t shape[4];
    size_t offset, numel; /* into Model.w and Model.g */
} ParamInfo;

typedef struct {
    NodeKind kind;
    char name[MODEL_NAME_BYTES]; /* module path with the prefix, e.g. "encoder_q.layer1.0.bn1" */
    int in[2], out;              /* tensors; in[1] only for ADD */
    int weight, bias;            /* parameters (-1: none); gamma and beta for BN */
    int bn;                      /* BN: index into the model's BN list */
    bool relu;                   /* BN and ADD: ReLU fused after */
    int k, stride, pad;          /* CONV and MAXPOOL */
    bool conv2d_init;            /* CONV: nn.Conv2d's own initialisation, not torchvision's (model_init_as_conv2d) */
    ConvOp *conv;
} Node;

typedef struct {
    int node, c;
    size_t stat_offset;      /* into Model.buf: running_mean at +0, running_var at +c */
    size_t save_offset;      /* into a workspace's saved batch statistics: mean at +0, invstd at +c */
    int64_t batches_tracked; /* torchvision's num_batches_tracked */
    bool zero_gamma;
    bool affine;             /* false: gamma 1 and beta 0, constants kept in Model.buf at const_offset */
    size_t const_offset;
} BnInfo;

typedef struct Model {
    const Backend *be;
    int max_batch;
    bool finalized;
    char prefix[MODEL_NAME_BYTES];

    Node *nodes;
    int n_nodes, cap_nodes;
    TensorDesc *tensors;
    int n_tensors, cap_tensors;
    ParamInfo *params;
    int n_params, cap_params;
    BnInfo *bns;
    int n_bns, cap_bns;

    float *w, *g;       /* parameters and their gradients (backend memory) */
    size_t n_weights;   /* floats in w and g */
    float *buf;         /* BN running statistics (backend memory) */
    size_t n_buf;       /* floats in buf */
    size_t n_bn_saved;  /* floats a workspace keeps per forward for the BN batch statistics */
    size_t max_tensor;  /* floats of the largest activation at max_batch */
    float bn_momentum;  /* 0.1 as torch */
    bool bn_stats_frozen; /* training-mode BN normalises with batch statistics but leaves the running statistics
                             alone: a forward pass run again for its backward must not count its batch twice */
    float bn_eps;       /* 1e-5 as torch */
    const BnSync *bn_sync; /* SyncBN over a data-parallel run's processes (training-mode BN); NULL: local */
    int bn_group;          /* training-mode BN: statistics over each group of this many images of the batch, as
                              that many processes' BN without SyncBN would compute them; the running statistics
                              follow the first group (DDP keeps rank 0's). 0: the whole batch. Set it before
                              model_finalize (which sizes the saved statistics) or lower it (0) afterwards */
    int bn_groups_max;     /* the most groups a batch of max_batch makes (model_finalize) */
    Precision precision;   /* what forward and backward round activations and their gradients to (precision.h) */
    bool saved_16bit;      /* bf16/fp16: workspaces made from now on may keep tensors as 16-bit copies (plan.h):
                              less memory, two more elementwise passes per copied tensor, the same bits */
    float *w_lowp;         /* bf16/fp16: m->w rounded, what convolutions and linear layers read (NULL: fp32) */
    bool lowp_weight_grads; /* bf16/fp16: convolution and linear gradients summed in the format (model_set_...) */
    float *g_pass;          /* ... each backward pass's gradient of one layer, before it is added (NULL: off) */
    size_t n_g_pass;        /* floats in g_pass: the largest layer's weight and bias */
} Model;

typedef enum { PLAN_SMALLEST, PLAN_KEEP_ALL, PLAN_REBUILD_ALL } PlanMode;

typedef struct Workspace {
    const Model *m;
    bool with_grad;
    int n;                /* batch of the last forward */
    bool train;           /* BN mode of the last forward */
    float **act, **grad;  /* per tensor; act[input] points at the caller's input */
    float **act_bwd;      /* per tensor: where backward rebuilds a recomputed activation (NULL: not recomputed) */
    float *bn_saved;      /* batch mean / invstd per BN */
    float **grad_sum;     /* per tensor read twice: where its later gradients arrive before they are added */
    uint16_t **copy16;    /* per tensor kept in 16 bits from forward to backward (plan.h; NULL: not) */
    Precision precision;  /* the model's when the workspace was made: its 16-bit copies are in this format */
    float *input_lowp;    /* bf16/fp16: the caller's input, rounded (NULL for a workspace made at fp32) */
    bool *written;        /* per tensor, during backward: its gradient holds a value */
    bool *rebuilt;        /* per tensor, during backward: act_bwd holds the recomputed activation */
    void *block;          /* the single allocation behind all of the above (see plan.h); NULL in a workspace that
                           * shares another's (workspaces_new_shared) */
    struct MemPlan *plan; /* while being made: the offsets not yet placed in a block */
    size_t block_bytes, unplanned_bytes;
    int n_rebuilt;        /* tensors the plan rebuilds in backward instead of keeping */
    int n_copy16;         /* tensors it keeps as 16-bit copies instead */
} Workspace;

/* ---- building ---- */
Model *model_new(const Backend *be);
void model_free(Model *m);
/* Names of parameters created from now on start with this (e.g. "encoder_q."). */
void model_set_prefix(Model *m, const char *prefix);

int model_input(Model *m, int c, int h, int w);
int model_conv(Model *m, const char *name, int x, int co, int k, int stride, int pad, bool bias);
/* The convolution that produced tensor y starts from nn.Conv2d's own initialisation (weights uniform within
 * 1/sqrt(fan_in), kaiming_uniform with a = sqrt(5)) instead of torchvision's kaiming-normal: a conv that a model
 * replaces after torchvision initialised it, as the official BYOL.py does with ResNet-18's stem. */
void model_init_as_conv2d(Model *m, int y);
/* zero_gamma: gamma starts at 0 (torchvision's zero_init_residual for the last BN of a residual block). */
int model_bn(Model *m, const char *name, int x, bool relu, bool zero_gamma);
/* BatchNorm without learnable gamma and beta (torch's affine=False, SimSiam's projector output). */
int model_bn_fixed(Model *m, const char *name, int x, bool relu);
/* A BN's gamma and beta as the ops read them (parameters, or the constants of a BN without affine). */
const float *model_bn_gamma(const Model *m, const Node *bn);
const float *model_bn_beta(const Model *m, const Node *bn);
int model_relu(Model *m, int x);
int model_maxpool(Model *m, int x, int k, int stride, int pad);
int model_gap(Model *m, int x);
int model_linear(Model *m, const char *name, int x, int out, bool bias);
int model_add(Model *m, int a, int b, bool relu);
/* Marks a tensor the caller reads after forward (features, head outputs): workspaces always keep it. Other
 * activations may be overwritten once no later step needs them. */
void model_mark_output(Model *m, int t);

/* Allocates parameters, gradients and buffers for batches up to max_batch and initialises them as torchvision
 * does (see init.c), drawing from the counter-based RNG with this seed. Returns -1 with rsa_fail on failure. */
int model_finalize(Model *m, int max_batch, uint64_t seed);

int model_find_param(const Model *m, const char *name);
int model_find_bn(const Model *m, const char *bn_name);
size_t model_tensor_numel(const Model *m, int t, int n);

/* Call after changing m->w (optimiser step, EMA, load), so cached weight copies are refreshed. */
void model_weights_changed(Model *m);
/* Switches the model between fp32 and mixed precision (precision.h), at any time after model_finalize; the first
 * switch to bf16 or fp16 allocates the rounded weights (-1 with rsa_fail when that fails). A workspace runs the
 * model at the precision it had when the workspace was made (its memory plan depends on it): after a switch, make
 * another. */
int model_set_precision(Model *m, Precision p);
/* on: at bf16 and fp16, each convolution's and linear layer's weight and bias gradients are summed in the format,
 * as autocast hands them back: a backward pass's gradient of the layer is rounded, added to m->g, and the sum
 * rounded (autograd's sum over the passes that used autocast's cached 16-bit weight copy). Batch-norm gradients
 * stay fp32. No effect at fp32. The first switch on allocates a buffer the size of the largest layer (-1 with
 * rsa_fail when that fails). */
int model_set_weight_grad_rounding(Model *m, bool on);
void model_zero_grad(Model *m);

/* ---- running ---- */
/* with_grad: backward will run. Memory follows plan.h: only marked outputs stay readable after forward. */
Workspace *workspace_new(const Model *m, bool with_grad);
/* How a workspace's memory is planned (plan.h): PLAN_SMALLEST, the default; PLAN_KEEP_ALL: every activation stays
 * readable after forward (tests and debugging; more memory); PLAN_REBUILD_ALL: backward rebuilds every tensor it
 * can (tests of the rebuilding). Every mode computes the same bits. */
Workspace *workspace_new_ex(const Model *m, bool with_grad, PlanMode mode);
/* Forward-only workspaces (no backward) for models whose forwards never overlap and whose activations are not read
 * once the forward that wrote them has returned, not even the marked outputs (the caller copies those out first):
 * they share one block, the size of the largest plan. out[0] holds the block: free it last. 0, or -1 with
 * rsa_fail (then out[] is NULL). */
int workspaces_new_shared(Workspace **out, const Model *const *models, int count);
void workspace_free(Workspace *ws);

/* Runs nodes until tensor `until` is computed (-1: all). input is NCHW [n][c][h][w] in backend memory and must stay
 * valid until backward. train: BN uses batch statistics and updates its running statistics. */
void model_forward(Model *m, Workspace *ws, int n, const float *input, bool train, int until);
/* Backpropagates d(loss)/d(tensor `from`) (dfrom, [n] x tensor, backend memory, the tensor's layout) through the
 * nodes that produced `from`; parameter gradients accumulate into m->g. */
void model_backward(Model *m, Workspace *ws, int from, const float *dfrom);

/* Copies tensor t of the last forward to host memory in NCHW (t must be a marked output, or the workspace be
 * PLAN_KEEP_ALL). */
void workspace_read_nchw(const Workspace *ws, int t, float *host_out);

#endif
