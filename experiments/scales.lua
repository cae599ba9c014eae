-- The reduced scales the experiment files share (each file picks them up in its own `scales`, changing what it
-- needs). Neither is comparable with the paper: reports label them and never put a paper number in an "ours" cell.
--
-- quick: minutes on a 2-core laptop. The Fashion-MNIST stand-in (Debian's dataset-fashion-mnist, 28 px grey
--   replicated to RGB, reached 32 px by the crops), a 4-block ResNet of width 16, an 8192-image pretraining subset,
--   a 5000-image linear-evaluation subset, short schedules. Table 1 quick with one seed (4 methods + random init)
--   takes about 11 minutes on 2 cores; results/quick/ holds our 3-seed run (REPRODUCE.md has the findings).
-- smoke: seconds; 4 steps on 256 images at 16 px, a 2-block ResNet, for tests. Its numbers mean nothing.
local standin = {
  dataset = "fashionmnist",
  image_size = 32,
  backbone = { block = "basic", layers = { 1, 1, 1, 1 }, width = 16, stem = "cifar" },
  stem_init = "conv2d",        -- the CIFAR stem as BYOL.py builds it (base_cifar.lua): nn.Conv2d's own init
  proj_hidden = 256,
  proj_out = 64,
}

-- The quick scale's report note, with the pretraining length of the file using it (Table 1's 12 epochs by default).
local function quick_notes(length)
  return "quick scale: Fashion-MNIST stand-in (32 px), ResNet {1,1,1,1} width 16, 8192-image subset, " .. length ..
         ", linear head 10 epochs (lr 1.0) on 5000 images; not comparable with the paper"
end

local quick = merge(standin, {
  sweep = { dataset = { { label = "Fashion-MNIST", dataset = "fashionmnist" } } },
  subset = 8192,
  eval_subset = 5000,
  epochs = 12,
  batch = 256,
  lr_scaling = "linear",
  linear_epochs = 10,
  linear_lr = 1.0,
  linear_milestones = { 6, 8 },
  knn_every = 3,
  knn_k = 50,
  warmup_epochs = 0,
  seeds = 1,
  low_memory = false,          -- small activations here: keep both online passes, 12 % faster (not in the run id)
  notes = quick_notes("12 epochs"),
})

local smoke = merge(standin, {
  sweep = { dataset = { { label = "Fashion-MNIST", dataset = "fashionmnist" } } },
  image_size = 16,             -- every test-set pass (10k images: kNN, linear) costs 4x less than at 32 px
  backbone = { block = "basic", layers = { 1, 1, 0, 0 }, width = 16, stem = "cifar" }, -- widths of 16k: oneDNN blocked kernels
  proj_hidden = 32,
  proj_out = 16,
  subset = 256,
  eval_subset = 256,
  epochs = 1,
  batch = 64,
  lr_scaling = "linear",
  linear_epochs = 1,
  linear_batch = 128,
  linear_lr = 1.0,
  linear_milestones = { 1, 1 },
  knn_every = 1,
  knn_k = 20,
  warmup_epochs = 0,
  seeds = 1,
  notes = "smoke scale: a few steps on 256 Fashion-MNIST images at 16 px; tests the pipeline, its numbers mean nothing",
})

return { quick = quick, smoke = smoke, standin = standin, quick_notes = quick_notes }
