-- Table 1: what semantic shift costs. BYOL with two aggressive views (AA), BYOL with one aggressive and one weak
-- view (AW), and RSA (aggressive views made from weak ones, "MA") with a fixed and a decaying beta; linear top-1 of a
-- ResNet-18 (ResNet-50 for ImageNet-100) after 200 epochs (100 for ImageNet-100), mean +- std of 3 seeds (one run on
-- ImageNet-100). The "Random init" row (not in the paper) evaluates the untrained encoder with the same linear
-- protocol: every method must beat it.
local S = include("scales.lua")
local methods = include("methods.lua")
local arms = {
  { label = "BYOL (AA)", method = "byol", views = "aa", paper = { method = "BYOL", variant = "AA" } },
  { label = "BYOL (AW)", method = "byol", views = "aw", paper = { method = "BYOL", variant = "AW" } },
  -- beta_base 0.5 for both RSA rows is inferred (the paper does not state it; shared/paper/numbers.csv notes)
  { label = "RSA, fixed beta", method = "rsa", views = "ma", beta_schedule = "fixed", beta_base = 0.5,
    paper = { method = "RSA", variant = "MA-fixed" } },
  { label = "RSA, decaying beta", method = "rsa", views = "ma", beta_schedule = "decay", beta_base = 0.5,
    paper = { method = "RSA", variant = "MA-decay" } },
  methods.random_init,
}
return {
  title = "Table 1: BYOL (AA, AW) against RSA (fixed and decaying beta), linear top-1 (%)",
  seeds = 3,
  report = { kind = "table", table = "T1", rows = "arm", cols = { "dataset" }, metric = "linear_top1" },
  sweep = {
    { dataset = {
      { label = "CIFAR-10", extends = "base_cifar.lua", dataset = "cifar10" },
      { label = "CIFAR-100", extends = "base_cifar.lua", dataset = "cifar100" },
      { label = "STL-10", extends = "base_stl10.lua" },
      { label = "Tiny ImageNet", extends = "base_tinyimagenet.lua" },
      { label = "ImageNet-100", extends = "base_imagenet100.lua", seeds = 1 }, -- the paper: a single run
    } },
    { arm = arms },
  },
  scales = { quick = S.quick, smoke = S.smoke },
}
