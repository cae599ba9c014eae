-- The methods compared in Tables 2 and 3, as sweep overlays, and the random-init row Tables 1-3 share. BYOL and RSA
-- follow the official RSA code (methods/BYOL.py, methods/RSA.py) under the protocol of the data set's base file. The
-- baselines keep that protocol's optimiser and schedule (one framework for every method, as the paper's tables compare
-- them; the paper does not list the baselines' settings, so this is our assumption) and take their method-specific
-- settings from their original papers, cited per value. Settings TrainConfig cannot express are noted.
local M = {}

-- CIFAR-10/100, STL-10, Tiny ImageNet (ResNet-18)
M.small = {
  { label = "SimCLR", method = "simclr", views = "aa", paper = { method = "SimCLR" },
    temperature = 0.5,        -- SimCLR (Chen et al., ICML 2020), Appendix B.9: tau 0.5 is best on CIFAR-10
    proj_out = 128,           -- SimCLR Sec. 4.2 / B.9: 128-d projection output
  },
  { label = "MoCo v2", method = "mocov2", views = "aa", paper = { method = "MoCo v2" },
    proj_hidden = 512,        -- MoCo v2's MLP head: hidden = the encoder's width (512 for ResNet-18)
    temperature = 0.1,        -- MoCo's official CIFAR-10 demo (facebookresearch/moco, colab/moco_cifar10_demo.ipynb): t 0.1
    tau_base = 0.99,          -- same demo: momentum 0.99
    queue_size = 4096,        -- same demo: K 4096
    proj_out = 128,           -- same demo: moco-dim 128
  },
  { label = "SimSiam", method = "simsiam", views = "aa", paper = { method = "SimSiam" },
    lr = 0.03, lr_scaling = "linear", -- SimSiam (Chen & He, CVPR 2021), Appendix: CIFAR lr 0.03 x batch / 256
    weight_decay = 5e-4,      -- same: weight decay 5e-4
    proj_hidden = 2048, proj_out = 2048, -- same: 2-layer 2048-d projector for CIFAR (the trainer's simsiam form)
    pred_hidden = 512,        -- SimSiam Sec. 4.1: the predictor's 512-d bottleneck
  },
  { label = "BYOL", method = "byol", views = "aa", paper = { method = "BYOL" } },
  { label = "RSA", method = "rsa", views = "ma", beta_schedule = "decay", paper = { method = "RSA" } },
}

-- ImageNet-100 (ResNet-50)
M.imagenet = {
  { label = "SimCLR", method = "simclr", views = "aa", paper = { method = "SimCLR" },
    temperature = 0.1,        -- SimCLR Sec. 5.1 / Table 5: tau 0.1 for ImageNet (with large batches)
    proj_out = 128,           -- SimCLR Sec. 4.2: 128-d projection output
  },
  { label = "MoCo v2", method = "mocov2", views = "aa", paper = { method = "MoCo v2" },
    temperature = 0.2,        -- MoCo v2 (Chen et al., arXiv:2003.04297), Sec. 2: tau 0.2
    tau_base = 0.999,         -- MoCo (He et al., CVPR 2020) Sec. 3.2 / MoCo v2 code: m 0.999
    queue_size = 65536,       -- MoCo v2: K 65536
    proj_hidden = 2048, proj_out = 128, -- MoCo v2 Sec. 2: 2-layer MLP head, 2048 hidden, 128 out
  },
  { label = "SimSiam", method = "simsiam", views = "aa", paper = { method = "SimSiam" },
    lr = 0.05, lr_scaling = "linear", -- SimSiam Sec. 4 (Baseline settings): lr 0.05 x batch / 256
    weight_decay = 1e-4,      -- same: weight decay 1e-4
    proj_hidden = 2048, proj_out = 2048, -- same: 2048-d projector (3 layers in the paper; the trainer builds 2)
    pred_hidden = 512,        -- SimSiam Sec. 4.1: the predictor's 512-d bottleneck
  },
  { label = "BYOL", method = "byol", views = "aa", paper = { method = "BYOL" } },
  { label = "RSA", method = "rsa", views = "ma", beta_schedule = "decay", paper = { method = "RSA" } },
}

-- The "Random init" row (not in the paper): the untrained encoder under the same linear protocol, the floor every
-- method must clear. Tables whose protocols agree resolve it to the same config, so they share its run (Table 2's
-- quick row is Table 1's).
M.random_init = { label = "Random init", method = "byol", views = "aa", epochs = 0, paper = { method = "Random init" } }

-- The arms followed by the "Random init" row.
function M.with_random_init(arms)
  local out = {}
  for i, arm in ipairs(arms) do out[i] = arm end
  out[#out + 1] = M.random_init
  return out
end

-- The arms with MoCo v2's queue and key-encoder momentum from MoCo's small-data demo (the CIFAR-10 colab cited above:
-- K 4096, m 0.99), for the reduced scales' 8192 images and 128-256 steps. ImageNet-100's 65536 keys (about half of
-- its 126 689 images) would hold every key of the whole run, and half of them would still be the random vectors the
-- queue starts with at the end of 128 steps; m 0.999, made for hundreds of thousands of steps, would leave 88 % of the initial weights in the key
-- encoder after 128 steps (0.999^128). Measured at Table 3's quick scale, 100 ep, seeds 0-2 (REPRODUCE.md): 45.2,
-- 43.3, 41.0 % linear top-1 with ImageNet's settings, 44.6, 45.2, 41.8 % with these, in a fifth of the pretraining
-- time (22-25 s against 119-128 s); at that length neither setting is what holds MoCo v2 back.
function M.with_small_data_moco(arms)
  local out = {}
  for i, arm in ipairs(arms) do
    out[i] = merge(arm, arm.method == "mocov2" and { queue_size = 4096, tau_base = 0.99 } or {})
  end
  return out
end

return M
