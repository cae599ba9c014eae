/* A fixed random subset of an in-memory data set, for the reduced scales. */
#ifndef RSA_SUBSET_H
#define RSA_SUBSET_H

#include "../data/data.h"

/* n images of ds chosen by the permutation rng_init(0, RNG_DATA, 0, 0, 0) (the same for every training seed, so
 * runs of different seeds and methods see the same images), kept in data set order. n >= count: ds itself is not
 * copied; *owned is set when the caller must close the result. NULL with rsa_fail for folder data sets. */
Dataset *dataset_subset(const Dataset *ds, int64_t n, bool *owned);

#endif
