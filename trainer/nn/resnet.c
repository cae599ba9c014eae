#include "nets.h"

#include "../core/error.h"

#include <stdio.h>

const ResNetSpec RESNET18_CIFAR = {BLOCK_BASIC, {2, 2, 2, 2}, 64, STEM_CIFAR, false};
const ResNetSpec RESNET50 = {BLOCK_BOTTLENECK, {3, 4, 6, 3}, 64, STEM_IMAGENET, false};

static int expansion(BlockKind b) { return b == BLOCK_BOTTLENECK ? 4 : 1; }

int resnet_feature_dim(const ResNetSpec *spec) {
    int stages = 0;
    while (stages < 4 && spec->layers[stages] > 0) stages++;
    RSA_ASSERT(stages > 0);
    return spec->width * (1 << (stages - 1)) * expansion(spec->block);
}

static int basic_block(Model *m, const char *name, int x, int inplanes, int planes, int stride) {
    char n[MODEL_NAME_BYTES];
    snprintf(n, sizeof n, "%s.conv1", name);
    int y = model_conv(m, n, x, planes, 3, stride, 1, false);
    snprintf(n, sizeof n, "%s.bn1", name);
    y = model_bn(m, n, y, true, false);
    snprintf(n, sizeof n, "%s.conv2", name);
    y = model_conv(m, n, y, planes, 3, 1, 1, false);
    snprintf(n, sizeof n, "%s.bn2", name);
    y = model_bn(m, n, y, false, true);
    int identity = x;
    if (stride != 1 || inplanes != planes) {
        snprintf(n, sizeof n, "%s.downsample.0", name);
        identity = model_conv(m, n, x, planes, 1, stride, 0, false);
        snprintf(n, sizeof n, "%s.downsample.1", name);
        identity = model_bn(m, n, identity, false, false);
    }
    return model_add(m, y, identity, true);
}

/* torchvision's Bottleneck (ResNet v1.5: the stride sits on the 3x3 convolution). */
static int bottleneck_block(Model *m, const char *name, int x, int inplanes, int planes, int stride) {
    char n[MODEL_NAME_BYTES];
    snprintf(n, sizeof n, "%s.conv1", name);
    int y = model_conv(m, n, x, planes, 1, 1, 0, false);
    snprintf(n, sizeof n, "%s.bn1", name);
    y = model_bn(m, n, y, true, false);
    snprintf(n, sizeof n, "%s.conv2", name);
    y = model_conv(m, n, y, planes, 3, stride, 1, false);
    snprintf(n, sizeof n, "%s.bn2", name);
    y = model_bn(m, n, y, true, false);
    snprintf(n, sizeof n, "%s.conv3", name);
    y = model_conv(m, n, y, planes * 4, 1, 1, 0, false);
    snprintf(n, sizeof n, "%s.bn3", name);
    y = model_bn(m, n, y, false, true);
    int identity = x;
    if (stride != 1 || inplanes != planes * 4) {
        snprintf(n, sizeof n, "%s.downsample.0", name);
        identity = model_conv(m, n, x, planes * 4, 1, stride, 0, false);
        snprintf(n, sizeof n, "%s.downsample.1", name);
        identity = model_bn(m, n, identity, false, false);
    }
    return model_add(m, y, identity, true);
}

int resnet_build(Model *m, const ResNetSpec *spec, int image) {
    int x;
    if (spec->stem == STEM_CIFAR) {
        x = model_conv(m, "conv1", image, spec->width, 3, 1, 1, false);
        if (spec->stem_conv2d_init) model_init_as_conv2d(m, x);
        x = model_bn(m, "bn1", x, true, false);
    } else {
        x = model_conv(m, "conv1", image, spec->width, 7, 2, 3, false);
        if (spec->stem_conv2d_init) model_init_as_conv2d(m, x);
        x = model_bn(m, "bn1", x, true, false);
        x = model_maxpool(m, x, 3, 2, 1);
    }
    int inplanes = spec->width;
    for (int stage = 0; stage < 4 && spec->layers[stage] > 0; stage++) {
        int planes = spec->width << stage;
        for (int b = 0; b < spec->layers[stage]; b++) {
            char name[MODEL_NAME_BYTES];
            snprintf(name, sizeof name, "layer%d.%d", stage + 1, b);
            int stride = stage > 0 && b == 0 ? 2 : 1;
            if (spec->block == BLOCK_BASIC)
                x = basic_block(m, name, x, inplanes, planes, stride);
            else
                x = bottleneck_block(m, name, x, inplanes, planes, stride);
            inplanes = planes * expansion(spec->block);
        }
    }
    int feature = model_gap(m, x);
    model_mark_output(m, feature);
    return feature;
}

int mlp_head_build(Model *m, int x, int hidden, int out) {
    x = model_linear(m, "0", x, hidden, true);
    x = model_bn(m, "1", x, true, false);
    int y = model_linear(m, "3", x, out, false);
    model_mark_output(m, y);
    return y;
}

int mlp_head_moco(Model *m, int x, int hidden, int out) {
    x = model_linear(m, "0", x, hidden, true);
    x = model_relu(m, x);
    int y = model_linear(m, "2", x, out, true);
    model_mark_output(m, y);
    return y;
}

int simsiam_projector(Model *m, int x, int hidden, int out) {
    x = model_linear(m, "0", x, hidden, false);
    x = model_bn(m, "1", x, true, false);
    x = model_linear(m, "3", x, out, false);
    int y = model_bn_fixed(m, "4", x, false);
    model_mark_output(m, y);
    return y;
}

int simsiam_predictor(Model *m, int x, int hidden, int out) {
    x = model_linear(m, "0", x, hidden, false);
    x = model_bn(m, "1", x, true, false);
    int y = model_linear(m, "3", x, out, true);
    model_mark_output(m, y);
    return y;
}
