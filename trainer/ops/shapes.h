/* Shapes shared by every implementation of an op (reference, CPU fast path, CUDA). */
#ifndef RSA_SHAPES_H
#define RSA_SHAPES_H

#include "../core/precision.h"

/* 2-D convolution with a square kernel, symmetric padding, no dilation or groups. */
typedef struct {
    int n, ci, hi, wi; /* input */
    int co, k, stride, pad;
    int ho, wo; /* output: (hi + 2 pad - k) / stride + 1 */
} ConvShape;

static inline ConvShape conv_shape(int n, int ci, int hi, int wi, int co, int k, int stride, int pad) {
    ConvShape s = {n, ci, hi, wi, co, k, stride, pad, (hi + 2 * pad - k) / stride + 1, (wi + 2 * pad - k) / stride + 1};
    return s;
}

/* Batch norm over n x hw values per channel; batchnorm1d is hw = 1. */
typedef struct {
    int n, c, hw;
    float eps;       /* 1e-5 as torch.nn.BatchNorm */
    Precision round; /* the format y (after the ReLU) and dx are rounded to, as round_lowp; FP32 (0): none */
} BnShape;

/* Max pooling with a square window. */
typedef struct {
    int n, c, hi, wi, k, stride, pad, ho, wo;
} PoolShape;

static inline PoolShape pool_shape(int n, int c, int hi, int wi, int k, int stride, int pad) {
    PoolShape s = {n, c, hi, wi, k, stride, pad, (hi + 2 * pad - k) / stride + 1, (wi + 2 * pad - k) / stride + 1};
    return s;
}

#endif
