-- Mixed precision (not a table of the paper): does pretraining with bf16 or fp16 reach fp32's linear top-1? The
-- paper trained its ImageNet tables with mixed precision (Tables 3, 4); this checks the trainer's (PyTorch CUDA
-- autocast's numerics with fp32 master weights, fp16 with dynamic loss scaling; REPRODUCE.md, "Mixed precision") on
-- BYOL (AA) and RSA (decaying beta), CIFAR-10's Table 1 protocol. Evaluation reads fp32 features in every row.
-- The last row also sums the convolution and linear weight gradients in bf16, as autocast does (lowp_weight_grads;
-- on the GPU that puts the weight-gradient convolutions on tensor cores).
local S = include("scales.lua")
return {
  title = "Mixed precision: linear top-1 (%) after pretraining in fp32, bf16 and fp16",
  seeds = 1,
  report = { kind = "table", rows = "precision", cols = { "arm" }, metric = "linear_top1" },
  sweep = {
    { dataset = { { label = "CIFAR-10", extends = "base_cifar.lua", dataset = "cifar10" } } },
    { arm = {
      { label = "BYOL (AA)", method = "byol", views = "aa" },
      { label = "RSA, decaying beta", method = "rsa", views = "ma", beta_schedule = "decay", beta_base = 0.5 },
    } },
    { precision = {
      { label = "fp32", precision = "fp32" },
      { label = "bf16", precision = "bf16" },
      { label = "fp16 (loss scaling)", precision = "fp16" },
      { label = "bf16, weight gradients in bf16", precision = "bf16", lowp_weight_grads = true },
    } },
  },
  -- quick: the fp32 row is Table 1 quick's BYOL (AA) and RSA (decaying beta) runs, seed 0: reused, not retrained
  scales = { quick = S.quick, smoke = S.smoke },
}
