/* The checkpoint reader (trainer/train/checkpoint.c) on top of the safetensors parser: a checkpoint of a small RSA
 * or MoCo v2 learner (picked by the file's "method" metadata), loaded into a learner of that config. After a
 * successful load the learner must be able to take a step (its queue position and counters in range). */
#include "fuzz.h"
#include "trainer/io/safetensors.h"
#include "trainer/train/checkpoint.h"

#include "tests/fuzz/fuzz_model.h"

static Learner *learners[2];
static TrainConfig cfgs[2];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!learners[0]) {
        for (int i = 0; i < 2; i++) {
            fuzz_model_config(&cfgs[i], i ? METHOD_MOCOV2 : METHOD_RSA);
            if (!(learners[i] = learner_new(&cfgs[i], backend_by_name("ref"), FUZZ_BATCH, 100))) {
                fprintf(stderr, "%s\n", rsa_error_message());
                abort();
            }
        }
    }
    unsigned char *bytes = malloc(size ? size : 1);
    if (!bytes) abort();
    memcpy(bytes, data, size);
    StFile f;
    rsa_error_clear();
    if (st_parse(&f, "checkpoint.safetensors", bytes, size) != 0) {
        fuzz_check_message();
        return 0;
    }
    const char *method = st_meta(&f, "method");
    Learner *l = learners[method && strcmp(method, "mocov2") == 0];
    RunPosition pos;
    if (checkpoint_load_from(l, "fuzz", &f, &pos) != 0) {
        fuzz_check_message();
    } else {
        if (pos.epoch < 0 || pos.step_in_epoch < 0 || l->step < 0) abort();
        if (l->queue && (l->queue_next < 0 || l->queue_next >= l->cfg->queue_size)) abort();
        fuzz_model_step(l);
    }
    st_close(&f);
    return 0;
}
