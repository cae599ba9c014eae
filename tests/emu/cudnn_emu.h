/* The emulated cuDNN's test hook (cudnn_emu.cpp), for the emulated copy of tests/gpu/test_cuda.c. */
#ifndef RSA_CUDNN_EMU_H
#define RSA_CUDNN_EMU_H

#ifdef __cplusplus
extern "C" {
#endif

enum { CUDNN_EMU_FORWARD, CUDNN_EMU_BACKWARD_DATA, CUDNN_EMU_BACKWARD_FILTER };

/* From now on the algorithm lists of `direction` hold no usable algorithm for 16-bit descriptors at batch n, as
 * cuDNN's lists do for some shapes on some GPUs; n = 0 lists them again. */
void cudnn_emu_decline_16bit(int direction, int n);

#ifdef __cplusplus
}
#endif

#endif
