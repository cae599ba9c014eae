-- Settings of run fashionmnist-simsiam-aa-e4-s1-5131735541 that are not part of its identity, and where it was used.
return {
  settings = {
  bn_group = 0,
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
  seed = 1,
  command = "rsa run experiments/table2.lua --scale quick --seeds 3 --results /work/quick-t2",
  overrides = "",
  experiment = { file = "experiments/table2.lua", name = "table2", scale = "quick", labels = "dataset=Fashion-MNIST length=200 ep arm=SimSiam seed=1", row = "SimSiam", col = "Fashion-MNIST, 200 ep [quick]" },
}
