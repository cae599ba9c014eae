-- The ImageNet-1K protocol of Table 4: ResNet-50, global batch 2048 (8 GPUs with SyncBN and AMP in the paper; here
-- SyncBN over MPI/NCCL, and fp32 until the GPU's fp16 path is fast: `--set precision=fp16 --set
-- lowp_weight_grads=true` gives AMP's numerics now, REPRODUCE.md "Mixed precision"), LARS (trust 0.001, momentum 0.9, 1-D parameters excluded from
-- adaptation and decay), lr 0.6 x (batch // 256) for 200 epochs (0.9 for 100), 10 linear warmup epochs then a
-- per-iteration cosine, weight decay 1e-6; the Mean-Shift linear protocol.
return {
  dataset = "imagenet",
  backbone = "resnet50",
  proj_hidden = 4096,
  proj_out = 256,
  epochs = 200,
  batch = 2048,
  optimizer = "lars",
  lars_trust = 0.001,
  momentum = 0.9,
  lr = 0.6,
  lr_scaling = "floor",
  lr_schedule = "cosine_step",
  warmup_epochs = 10,
  weight_decay = 1e-6,
  decay_1d = false,
  sync_bn = true,               -- SyncBN across the 8 GPUs
  beta_base = 0.4,
  linear = "meanshift",
  linear_epochs = 40,
  linear_lr = 0.01,
  linear_milestones = { 15, 30 },
  knn_every = 0,                -- a kNN bank of 1.28M images is not worth it
  seeds = 1,
}
