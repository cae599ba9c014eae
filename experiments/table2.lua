-- Table 2: SimCLR, MoCo v2, SimSiam, BYOL and RSA on CIFAR-10/100, STL-10 and Tiny ImageNet (ResNet-18), 200 epochs
-- (mean +- std of 3 seeds) and 800 epochs (one run); linear top-1. RSA uses beta_base 0.3 on CIFAR and 0.4 on STL-10
-- and Tiny ImageNet (from the base files), decaying. The reduced scales add a "Random init" row (not in the paper),
-- the floor their numbers must clear; at the paper's scale Table 1 has it.
local S = include("scales.lua")
local methods = include("methods.lua")
local short_long = function(a, b)
  return {
    { label = a.label, epochs = a.epochs, seeds = a.seeds },
    { label = b.label, epochs = b.epochs, seeds = b.seeds },
  }
end
return {
  title = "Table 2: RSA against contrastive and non-contrastive methods, linear top-1 (%)",
  report = { kind = "table", table = "T2", rows = "arm", cols = { "dataset", "length" } },
  sweep = {
    { dataset = {
      { label = "CIFAR-10", extends = "base_cifar.lua", dataset = "cifar10" },
      { label = "CIFAR-100", extends = "base_cifar.lua", dataset = "cifar100" },
      { label = "STL-10", extends = "base_stl10.lua" },
      { label = "Tiny ImageNet", extends = "base_tinyimagenet.lua" },
    } },
    { length = short_long({ label = "200 ep", epochs = 200, seeds = 3 }, { label = "800 ep", epochs = 800, seeds = 1 }) },
    { arm = methods.small },
  },
  scales = {
    quick = { extends = S.quick,
              notes = S.quick_notes("4 and 16 epochs (the 200 and 800 ep columns)"),
              sweep = { length = short_long({ label = "200 ep", epochs = 4 }, { label = "800 ep", epochs = 16 }),
                        arm = methods.with_random_init(methods.small) } },
    smoke = { extends = S.smoke,
              sweep = { length = short_long({ label = "200 ep", epochs = 1 }, { label = "800 ep", epochs = 2 }),
                        arm = methods.with_random_init(methods.small) } },
  },
}
