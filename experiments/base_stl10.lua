-- The STL-10 protocol: the CIFAR protocol at 64 px (images resized from 96), pretraining on train+unlabeled
-- (105k images, the trainer's choice for stl10), linear evaluation on the 5k labelled train split; beta_base 0.4.
return {
  extends = "base_cifar.lua",
  dataset = "stl10",
  image_size = 64,
  beta_base = 0.4,
}
