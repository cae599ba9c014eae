-- The Tiny ImageNet protocol: the CIFAR protocol at 64 px, beta_base 0.4 (ResNet-18 keeps the 3x3 stem and no
-- max-pool at 64 px, as the official code).
return {
  extends = "base_cifar.lua",
  dataset = "tinyimagenet",
  image_size = 64,
  beta_base = 0.4,
}
