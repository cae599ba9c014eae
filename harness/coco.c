/* Tables 5 and 6: COCO runs in an external framework (detectron2) on our exported backbone. We write what it
 * needs (the backbone under torchvision names, the weight-conversion command, the detectron2 configs and a README
 * with the commands) and read its metrics when they exist. */
#include "harness.h"

#include "trainer/core/error.h"
#include "trainer/core/fileio.h"
#include "trainer/train/checkpoint.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

/* detectron2 writes metrics.json: one JSON object per line; the evaluation's line holds "bbox/AP" etc. Returns the
 * keys of the last such line as "key = value" lines (malloc'd), or NULL. */
static char *read_metrics(const char *path, const char *prefix) {
    char *text = slurp(path);
    if (!text) return NULL;
    char *last = NULL;
    for (char *line = text; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = 0;
        if (strstr(line, "\"bbox/AP\"") || strstr(line, "\"keypoints/AP\"")) last = line;
        line = nl ? nl + 1 : NULL;
    }
    Str out = {0};
    for (char *p = last; p && (p = strchr(p, '"'));) {
        char *q = strchr(p + 1, '"');
        if (!q) break;
        *q = 0;
        const char *key = p + 1;
        char *colon = q + 1;
        while (*colon == ' ' || *colon == ':') colon++;
        char *end;
        double v = strtod(colon, &end);
        if (end != colon && (strncmp(key, prefix, strlen(prefix)) == 0 || prefix[0] == 0))
            str_addf(&out, "%s = %.4f\n", key, v);
        p = end != colon ? end : q + 1;
    }
    free(text);
    return out.s;
}

static int write_config(const char *dir, const char *name, const char *base, bool keypoints, const char *sched) {
    bool two = strcmp(sched, "2x") == 0;
    char *text = xasprintf(
        "# Mask R-CNN R50-FPN, COCO %s schedule, from the rsa-repro backbone (MoCo's detection settings: SyncBN in\n"
        "# the backbone and FPN, RGB input with torchvision's normalisation, stride in the 3x3 convolutions).\n"
        "# _BASE_ is detectron2's own config: set DETECTRON2_HOME before `rsa run` to write its absolute path.\n"
        "_BASE_: \"%s\"\n"
        "MODEL:\n"
        "  WEIGHTS: \"backbone.pkl\"\n"
        "  MASK_ON: True\n"
        "  KEYPOINT_ON: %s\n"
        "  PIXEL_MEAN: [123.675, 116.280, 103.530]\n"
        "  PIXEL_STD: [58.395, 57.120, 57.375]\n"
        "  RESNETS:\n"
        "    DEPTH: 50\n"
        "    NORM: \"SyncBN\"\n"
        "    STRIDE_IN_1X1: False\n"
        "  FPN:\n"
        "    NORM: \"SyncBN\"\n"
        "INPUT:\n"
        "  FORMAT: \"RGB\"\n"
        "SOLVER:\n"
        "  STEPS: (%s)\n"
        "  MAX_ITER: %s\n"
        "TEST:\n"
        "  PRECISE_BN:\n"
        "    ENABLED: True\n"
        "OUTPUT_DIR: \"output/%s\"\n",
        sched, base, keypoints ? "True" : "False", two ? "120000, 160000" : "60000, 80000", two ? "180000" : "90000",
        name);
    char *path = xasprintf("%s/%s.yaml", dir, name);
    int rc = atomic_write_text(path, text);
    free(path), free(text);
    return rc;
}

int coco_prepare(const Ctx *ctx, const Experiment *e, const ExpRun *backbone, const RunStatus *st, const char *dir,
                 char **metrics_text, char **status_line) {
    *metrics_text = NULL;
    if (make_dirs(dir) != 0) {
        *status_line = xasprintf("cannot create %s: %s", dir, rsa_error_message());
        return -1;
    }
    const char *sched = e->coco[0] ? e->coco : "1x";
    const char *d2 = getenv("DETECTRON2_HOME");
    char *base_seg = d2 ? xasprintf("%s/configs/Base-RCNN-FPN.yaml", d2) : xstrdup("detectron2/configs/Base-RCNN-FPN.yaml");
    char *base_kp = d2 ? xasprintf("%s/configs/COCO-Keypoints/Base-Keypoint-RCNN-FPN.yaml", d2)
                       : xstrdup("detectron2/configs/COCO-Keypoints/Base-Keypoint-RCNN-FPN.yaml");
    char *seg_name = xasprintf("coco_R_50_FPN_%s", sched);
    char *kp_name = xasprintf("coco_kp_R_50_FPN_%s", sched);
    bool kp = strcmp(sched, "1x") == 0;
    int rc = write_config(dir, seg_name, base_seg, false, sched);
    if (rc == 0 && kp) rc = write_config(dir, kp_name, base_kp, true, sched);
    /* the backbone, exported once its run is done */
    char *ckpt = xasprintf("%s/runs/%s/checkpoint.safetensors", ctx->results, backbone->id);
    char *out = xasprintf("%s/backbone.safetensors", dir);
    const char *backbone_state;
    if (st->state == RUN_DONE && file_exists(ckpt)) {
        if (checkpoint_export_torchvision(ckpt, out) == 0) backbone_state = "exported to backbone.safetensors";
        else backbone_state = "export FAILED (see rsa export)";
    } else {
        backbone_state = "not trained yet: `rsa run` this experiment first";
    }
    char *readme = xasprintf(
        "# COCO fine-tuning of the rsa-repro backbone (%s, %s schedule)\n\n"
        "Backbone run: `%s` (%s); its encoder: %s.\n\n"
        "detectron2 and COCO are outside this project. With both installed (COCO under `datasets/coco` as detectron2 "
        "expects, or DETECTRON2_DATASETS set):\n\n"
        "```sh\n"
        "cd %s\n"
        "python3 %s/harness/tools/convert_to_detectron2.py backbone.safetensors backbone.pkl\n"
        "python3 $DETECTRON2_HOME/tools/train_net.py --config-file %s.yaml --num-gpus 8\n"
        "%s"
        "```\n\n"
        "detectron2 writes `output/<config>/metrics.json`; `rsa report` reads the last evaluation line from it and "
        "fills our row of the table. The paper used 8 GPUs (batch 16); the configs keep detectron2's defaults for "
        "that.\n",
        e->table, sched, backbone->id, backbone->labels, backbone_state, dir, ctx->home, seg_name,
        kp ? "python3 $DETECTRON2_HOME/tools/train_net.py --config-file coco_kp_R_50_FPN_1x.yaml --num-gpus 8\n" : "");
    char *readme_path = xasprintf("%s/README.md", dir);
    char *convert = xasprintf("#!/bin/sh\n# Converts the exported backbone (torchvision names) into detectron2's "
                              "format.\nset -e\ncd \"$(dirname \"$0\")\"\npython3 %s/harness/tools/convert_to_detectron2.py "
                              "backbone.safetensors backbone.pkl\n", ctx->home);
    char *convert_path = xasprintf("%s/convert.sh", dir);
    if (rc == 0) rc = atomic_write_text(readme_path, readme);
    if (rc == 0) rc = atomic_write_text(convert_path, convert);
    /* metrics */
    char *seg_metrics = xasprintf("%s/output/%s/metrics.json", dir, seg_name);
    char *kp_metrics = xasprintf("%s/output/%s/metrics.json", dir, kp_name);
    char *a = read_metrics(seg_metrics, "");
    char *b = kp ? read_metrics(kp_metrics, "keypoints/") : NULL;
    if (a || b) {
        *metrics_text = xasprintf("%s%s", a ? a : "", b ? b : "");
        *status_line = xasprintf("detectron2 metrics read from %s%s%s", seg_metrics, b ? " and " : "", b ? kp_metrics : "");
    } else {
        *status_line = xasprintf("not run: needs detectron2 and COCO (configs, conversion command and README written "
                                 "to %s; backbone %s)", dir, backbone_state);
    }
    free(a), free(b), free(seg_metrics), free(kp_metrics);
    free(base_seg), free(base_kp), free(seg_name), free(kp_name), free(ckpt), free(out), free(readme),
        free(readme_path), free(convert), free(convert_path);
    return rc;
}
