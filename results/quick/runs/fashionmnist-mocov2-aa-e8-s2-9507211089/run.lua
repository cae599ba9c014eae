-- Settings of run fashionmnist-mocov2-aa-e8-s2-9507211089 that are not part of its identity, and where it was used.
return {
  settings = {
  checkpoint_every = 0,
  data_root = "",
  deterministic = true,
  loader_threads = "auto",
  low_memory = false,
  lowp_convolutions = true,
  lowp_weight_grads = false,
  precision = "fp32",
  saved_16bit = false,
},
  seed = 2,
  command = "rsa run experiments/table3.lua --scale quick --seeds 3 --results /work/quick-t3 --threads 1",
  overrides = "",
  experiment = { file = "experiments/table3.lua", name = "table3", scale = "quick", labels = "length=200 ep arm=MoCo v2 dataset=Fashion-MNIST seed=2", row = "MoCo v2", col = "200 ep [quick]" },
}
