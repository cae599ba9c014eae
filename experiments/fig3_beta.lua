-- Figure 3: linear top-1 against beta_base (RSA, decaying beta): CIFAR-100 and STL-10 at 800 epochs, ImageNet-100 at
-- 100 epochs. The paper states only the best points: 0.3 for CIFAR-100, 0.4 for STL-10 and ImageNet-100, and that
-- beta_base = 0 (only the weak-target term, no aggressive-to-aggressive term) is worse; the plot marks the best points.
local S = include("scales.lua")
local betas = { 0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0 }
return {
  title = "Figure 3: linear top-1 against beta_base",
  method = "rsa",
  views = "ma",
  beta_schedule = "decay",
  seeds = 1,
  report = { kind = "beta_curve", rows = "beta_base", cols = { "dataset" }, x = "beta_base",
             best = { ["CIFAR-100"] = 0.3, ["STL-10"] = 0.4, ["ImageNet-100"] = 0.4 } },
  sweep = {
    { dataset = {
      { label = "CIFAR-100", extends = "base_cifar.lua", dataset = "cifar100", epochs = 800 },
      { label = "STL-10", extends = "base_stl10.lua", epochs = 800 },
      { label = "ImageNet-100", extends = "base_imagenet100.lua", epochs = 100 },
    } },
    { beta_base = betas },
  },
  scales = {
    -- 0.5 is Table 1 quick's RSA (decaying beta) run, seed 0: reused, not retrained
    quick = { extends = S.quick, sweep = { beta_base = { 0.0, 0.2, 0.4, 0.5, 0.6, 0.8 } } },
    smoke = { extends = S.smoke, sweep = { beta_base = { 0.0, 0.4 } } },
  },
}
