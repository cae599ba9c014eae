-- Table 4: ImageNet-1K linear top-1 of RSA at 100 and 200 epochs (ResNet-50, batch 2048, LARS, 8 GPUs, AMP). Only
-- RSA's two rows are runs; the report adds the paper's other rows as "quoted" (numbers the paper quotes from other
-- papers: never run here).
local S = include("scales.lua")
local function arms(e100, e200)
  return {
    { label = "RSA (100 ep)", epochs = e100, lr = 0.9, paper = { method = "RSA", epochs = 100 } }, -- lr 0.9 x (batch // 256)
    { label = "RSA (200 ep)", epochs = e200, lr = 0.6, paper = { method = "RSA", epochs = 200 } }, -- lr 0.6 x (batch // 256)
  }
end
return {
  extends = "base_imagenet1k.lua",
  title = "Table 4: ImageNet-1K, linear top-1 (%)",
  method = "rsa",
  views = "ma",
  beta_schedule = "decay",
  report = { kind = "table", table = "T4", rows = "arm", cols = { "dataset" } },
  sweep = { { arm = arms(100, 200) } },
  scales = {
    -- the protocol's shape at toy size: LARS with warmup, decay without 1-D parameters, Mean-Shift linear protocol
    quick = { extends = S.quick, batch = 256, warmup_epochs = 1, knn_every = 2, sweep = { arm = arms(4, 8) },
              notes = S.quick_notes("4 and 8 epochs (the 100 and 200 ep rows)") },
    smoke = { extends = S.smoke, warmup_epochs = 1, knn_every = 1, sweep = { arm = arms(1, 2) } },
  },
}
