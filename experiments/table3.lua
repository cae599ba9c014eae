-- Table 3: the five methods on ImageNet-100 (ResNet-50, Mean-Shift linear protocol) at 100 and 200 epochs, one run
-- each; linear top-1.
local S = include("scales.lua")
local methods = include("methods.lua")

-- The reduced scales' arms: MoCo v2 with the small-data demo's queue and momentum, and a "Random init" row (not in
-- the paper) that evaluates the untrained encoder with the same linear protocol, the floor a method must clear.
local function reduced_arms()
  return methods.with_random_init(methods.with_small_data_moco(methods.imagenet))
end

return {
  extends = "base_imagenet100.lua",
  title = "Table 3: ImageNet-100, linear top-1 (%)",
  report = { kind = "table", table = "T3", rows = "arm", cols = { "length" } },
  sweep = {
    { length = { { label = "100 ep", epochs = 100 }, { label = "200 ep", epochs = 200 } } },
    { arm = methods.imagenet },
  },
  scales = {
    quick = { extends = S.quick,
              notes = S.quick_notes("4 and 8 epochs (the 100 and 200 ep columns)"),
              sweep = { length = { { label = "100 ep", epochs = 4 }, { label = "200 ep", epochs = 8 } },
                        arm = reduced_arms() } },
    smoke = { extends = S.smoke,
              bn_group = 16,  -- the paper's 4 BN groups per batch (64 of 256) at smoke's batch 64, so that
                              -- `mpirun -np 2` (or 4) runs it as the paper's 4 GPUs split the batch
              sweep = { length = { { label = "100 ep", epochs = 1 }, { label = "200 ep", epochs = 2 } },
                        arm = reduced_arms() } },
  },
}
