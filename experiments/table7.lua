-- Table 7: training time of RSA against BYOL. The paper: CIFAR-100 and STL-10 for 800 epochs on one V100, and
-- ImageNet-100 for 200 epochs on 4 V100s with AMP; the point is the ratio (RSA costs < 9 % more). Our rows are the
-- measured wall time of the pretraining steps (train_seconds) of our own runs, on our hardware, and their ratio.
-- The 800-epoch runs are the same runs as Table 2's (same resolved config, same run id): running either reuses them.
local S = include("scales.lua")
return {
  title = "Table 7: training time, RSA against BYOL",
  report = { kind = "walltime", table = "T7", rows = "arm", cols = { "dataset" }, metric = "train_hours" },
  sweep = {
    { dataset = {
      { label = "CIFAR-100", extends = "base_cifar.lua", dataset = "cifar100", epochs = 800, seeds = 1 },
      { label = "STL-10", extends = "base_stl10.lua", epochs = 800, seeds = 1 },
      { label = "ImageNet-100", extends = "base_imagenet100.lua", epochs = 200 },
    } },
    { arm = {
      { label = "BYOL", method = "byol", views = "aa", paper = { method = "BYOL" } },
      { label = "RSA", method = "rsa", views = "ma", beta_schedule = "decay", paper = { method = "RSA" } },
    } },
  },
  -- quick: the BYOL (AA) and RSA (decaying beta 0.5) runs of Table 1 quick, 3 seeds: the same resolved configs, so the
  -- same run ids, and running either experiment reuses the other's runs (train_seconds counts the steps only).
  scales = {
    quick = { extends = S.quick, seeds = 3, sweep = { arm = {
      { label = "BYOL", method = "byol", views = "aa", paper = { method = "BYOL" } },
      { label = "RSA", method = "rsa", views = "ma", beta_schedule = "decay", beta_base = 0.5, paper = { method = "RSA" } },
    } } },
    smoke = S.smoke,
  },
}
