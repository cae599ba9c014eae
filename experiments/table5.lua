-- Table 5: COCO detection, instance segmentation and keypoints with Mask R-CNN + FPN (1x schedule), fine-tuned from
-- the ImageNet-1K 200-epoch RSA backbone. Detection runs in an external framework (detectron2): `rsa run` trains (or
-- reuses) the backbone run of Table 4, exports it with torchvision names, and writes the detectron2 config and the
-- weight-conversion command under results/table5/detectron2/; the report reads detectron2's metrics when present,
-- and otherwise says "not run: needs detectron2 and COCO".
local t4 = include("table4.lua")
return {
  extends = t4,
  title = "Table 5: COCO, Mask R-CNN R50-FPN, 1x schedule (AP)",
  report = { kind = "coco", table = "T5", coco = "1x", rows = "arm", cols = { "dataset" } },
  sweep = { { arm = { t4.sweep[1].arm[2] } } }, -- the 200-epoch backbone
  scales = {
    quick = { sweep = { arm = { t4.scales.quick.sweep.arm[2] } } },
    smoke = { sweep = { arm = { t4.scales.smoke.sweep.arm[2] } } },
  },
}
