/* Network builders: torchvision's ResNets (with the CIFAR stem the paper uses for 32 and 64 px data) and the
 * BYOL/RSA MLP heads. Builders add nodes to a model under its current name prefix and return the output tensor. */
#ifndef RSA_NETS_H
#define RSA_NETS_H

#include "model.h"

typedef enum { BLOCK_BASIC, BLOCK_BOTTLENECK } BlockKind;
typedef enum { STEM_CIFAR, STEM_IMAGENET } StemKind;

typedef struct {
    BlockKind block;
    int layers[4]; /* blocks per stage; a stage with 0 blocks (and every later one) is left out */
    int width;     /* channels of the first stage: 64 in torchvision; smaller widths make the quick scale */
    StemKind stem; /* CIFAR: 3x3 stride 1 conv, no max-pool; ImageNet: 7x7 stride 2 conv + 3x3 stride 2 max-pool */
    /* the stem conv initialised as nn.Conv2d initialises itself (uniform within 1/sqrt(fan_in)) instead of
     * torchvision's kaiming: what the official BYOL.py's ResNet-18 gets, whose 3x3 stem replaces torchvision's
     * after its init */
    bool stem_conv2d_init;
} ResNetSpec;

extern const ResNetSpec RESNET18_CIFAR, RESNET50;

/* Builds the encoder with zero_init_residual and no fc; returns the pooled feature tensor ([n][feature_dim]). */
int resnet_build(Model *m, const ResNetSpec *spec, int image);
int resnet_feature_dim(const ResNetSpec *spec);

/* Linear(in, hidden) + BatchNorm1d + ReLU + Linear(hidden, out, no bias), named 0, 1, 3 as nn.Sequential: the
 * BYOL/RSA projector and predictor (methods/BYOL.py), also SimCLR's projector. */
int mlp_head_build(Model *m, int x, int hidden, int out);
/* MoCo v2's projector (Chen et al. 2020, "Improved Baselines..."): Linear(in, hidden) + ReLU + Linear(hidden, out),
 * both with bias, no BN; named 0, 2. */
int mlp_head_moco(Model *m, int x, int hidden, int out);
/* SimSiam's projector in its CIFAR form (Chen & He 2021, Sec. 5: two layers): Linear(in, hidden, no bias) + BN +
 * ReLU + Linear(hidden, out, no bias) + BN without affine; named 0, 1, 3, 4. */
int simsiam_projector(Model *m, int x, int hidden, int out);
/* SimSiam's predictor: Linear(out, hidden, no bias) + BN + ReLU + Linear(hidden, out); named 0, 1, 3. */
int simsiam_predictor(Model *m, int x, int hidden, int out);

#endif
