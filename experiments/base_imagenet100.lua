-- The ImageNet-100 protocol (the 100 CMC classes; the list ships in trainer/data/imagenet100.txt):
-- ResNet-50 (torchvision stem), heads 4096/256, SGD lr 0.2 x (batch // 256) with a per-iteration cosine, weight
-- decay 1e-4, batch 256, 100 epochs, one run; the Mean-Shift linear protocol (normalised + standardised features,
-- lr 0.01, 40 epochs, x0.1 at 15 and 30). The paper trained on 4 GPUs without SyncBN (train_multi.py converts BN
-- only for ImageNet-1K), so each BN saw 64 images: bn_group = 64 keeps that on 1, 2 or 4 GPUs (8 would give each
-- only 32; run two 4-GPU jobs instead, REPRODUCE.md).
return {
  dataset = "imagenet100",
  backbone = "resnet50",
  proj_hidden = 4096,
  proj_out = 256,
  epochs = 100,
  batch = 256,
  optimizer = "sgd",
  lr = 0.2,
  lr_scaling = "floor",
  lr_schedule = "cosine_step",
  weight_decay = 1e-4,
  decay_1d = true,
  momentum = 0.9,
  bn_group = 64,
  beta_base = 0.4,
  linear = "meanshift",
  linear_epochs = 40,
  linear_lr = 0.01,
  linear_milestones = { 15, 30 },
  knn_every = 10,
  seeds = 1,
}
