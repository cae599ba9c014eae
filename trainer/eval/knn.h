/* The kNN monitor of the official code (common/tools.py, after InstDisc): cosine similarity of L2-normalised test
 * features to the memory bank (training set under the test transform), the k most similar vote for their class
 * with weight exp(sim / t), top-1 of the summed votes. Not in the paper's tables; a cheap progress signal. */
#ifndef RSA_KNN_H
#define RSA_KNN_H

#include "features.h"

/* Accuracy in percent. Both feature sets must be L2-normalised. Ties in similarity go to the lower bank index, ties
 * in the vote to the lower class. */
double knn_top1(const Features *bank, const Features *test, int num_classes, int k, double t);
/* The predicted class of every test row (pred[test->n]); the rows are voted on in parallel, each alone. */
void knn_predict(const Features *bank, const Features *test, int num_classes, int k, double t, int32_t *pred);

#endif
