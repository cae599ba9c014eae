-- The CIFAR-10/100 protocol of the paper (shared/paper/README.md; the official train_single.py):
-- ResNet-18 with the 3x3 stem and no max-pool, heads 1024/128, SGD momentum 0.9, lr 0.1 x (batch // 256) with a
-- cosine set once per epoch, weight decay 5e-4 on all parameters, batch 256, 200 epochs, 3 seeds; linear
-- evaluation as eval_single.py (lr 30, Nesterov, 100 epochs, x0.1 at 60 and 80), reporting the last epoch.
return {
  dataset = "cifar10",
  backbone = "resnet18",
  stem_init = "conv2d",        -- BYOL.py replaces torchvision's stem after its init: nn.Conv2d's own init
  proj_hidden = 1024,
  proj_out = 128,
  epochs = 200,
  batch = 256,
  optimizer = "sgd",
  lr = 0.1,
  lr_scaling = "floor",        -- the official lr * (batch // 256)
  lr_schedule = "cosine_epoch",
  weight_decay = 5e-4,
  decay_1d = true,
  momentum = 0.9,
  beta_base = 0.3,             -- the paper's CIFAR value (the official code's default is 0.4)
  tau_base = 0.99,
  linear = "small",
  linear_epochs = 100,
  linear_lr = 30,
  linear_milestones = { 60, 80 },
  seeds = 3,
}
