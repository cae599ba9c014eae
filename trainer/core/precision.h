/* Mixed precision as the networks see it. With bf16 or fp16, every activation and every activation gradient a
 * network writes is rounded to that format (round to nearest, ties to even), as PyTorch's CUDA autocast stores
 * them; convolutions and linear layers read those values and weights rounded the same way and accumulate in fp32;
 * batch-norm statistics, losses, parameters, parameter gradients and the optimiser stay fp32 (the master weights;
 * autocast itself hands back convolution and linear weight gradients rounded to the format, summed over the passes
 * in the format: ours do that only with lowp_weight_grads, nn/model.h).
 * The values are kept in float storage, so every backend computes the same rounding points and the reference
 * backend is the oracle of the others. fp16 overflows beyond 65504 (to infinity) and loses values below 2^-24:
 * what the trainer's loss scaling (train/loss_scale.h) is for. */
#ifndef RSA_PRECISION_H
#define RSA_PRECISION_H

typedef enum { PRECISION_FP32, PRECISION_BF16, PRECISION_FP16 } Precision;

/* The largest positive value that rounds to +0 in format p (half the smallest subnormal: the tie goes to even, 0).
 * A ReLU whose output is rounded passes gradient where its input exceeds this; a backend that rebuilds the mask
 * from the input must use it, not 0, to agree with the rounded output. */
static inline float lowp_zero_bound(Precision p) {
    return p == PRECISION_BF16 ? 0x1p-134f : p == PRECISION_FP16 ? 0x1p-25f : 0.0f;
}

#ifndef __cplusplus /* the CUDA backend rounds with cuda_bf16.h and cuda_fp16.h */
#include <math.h>
#include <stdint.h>
#include <string.h>

static inline const char *precision_name(Precision p) {
    return p == PRECISION_BF16 ? "bf16" : p == PRECISION_FP16 ? "fp16" : "fp32";
}

/* bf16 keeps float's exponent and the top 7 mantissa bits: add half of the dropped 16 bits (less one, plus the
 * lowest kept bit, for ties to even) and truncate. Overflow past bf16's largest value carries into infinity, as it
 * should; NaN stays NaN. */
static inline float round_bf16(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) return x;
    u += 0x7fffu + ((u >> 16) & 1u);
    u &= 0xffff0000u;
    memcpy(&x, &u, sizeof u);
    return x;
}

/* fp16: 10 mantissa bits, normal from 2^-14, subnormal steps of 2^-24, largest 65504 (65520 and above round to
 * infinity). Normal values round as bf16 does but dropping 13 bits; subnormals are a multiple of 2^-24, and
 * x * 2^24 is exact in float, so rintf (ties to even) rounds them. */
static inline float round_fp16(float x) {
    float a = fabsf(x);
    if (!(a < 65520.0f)) return a == a ? copysignf(INFINITY, x) : x;
    if (a < 0x1p-14f) return rintf(x * 0x1p24f) * 0x1p-24f;
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    u += 0xfffu + ((u >> 13) & 1u);
    u &= ~0x1fffu;
    memcpy(&x, &u, sizeof u);
    return x;
}

static inline float round_to(Precision p, float x) {
    return p == PRECISION_BF16 ? round_bf16(x) : p == PRECISION_FP16 ? round_fp16(x) : x;
}

/* The 16 bits of round_to(p, x) in format p (p is bf16 or fp16), and back: lowp_value(p, lowp_bits(p, x)) is
 * round_to(p, x), bit for bit, NaN aside (a NaN comes back as a NaN). For keeping values a network has already
 * rounded in half the memory. */
static inline uint16_t lowp_bits(Precision p, float x) {
    x = round_to(p, x);
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    if (p == PRECISION_BF16) return (uint16_t)((u >> 16) | ((u & 0x7fffffffu) > 0x7f800000u ? 0x40u : 0u));
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    float a = fabsf(x);
    if (a != a) return sign | 0x7e00u;
    if (a == INFINITY) return sign | 0x7c00u;
    if (a < 0x1p-14f) return sign | (uint16_t)(a * 0x1p24f); /* a subnormal: a multiple of 2^-24 */
    return sign | (uint16_t)((((u >> 23) & 0xffu) - 127u + 15u) << 10 | ((u >> 13) & 0x3ffu));
}

static inline float lowp_value(Precision p, uint16_t h) {
    uint32_t u;
    float x;
    if (p == PRECISION_BF16) {
        u = (uint32_t)h << 16;
        memcpy(&x, &u, sizeof x);
        return x;
    }
    uint32_t e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
    if (e == 0) {
        x = (float)m * 0x1p-24f;
        return h & 0x8000u ? -x : x;
    }
    u = (uint32_t)(h & 0x8000u) << 16 | (e == 31 ? 0xffu : e - 15u + 127u) << 23 | m << 13;
    memcpy(&x, &u, sizeof x);
    return x;
}
#endif

#endif
