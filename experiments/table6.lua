-- Table 6: COCO with the 2x schedule (no keypoints), from the same ImageNet-1K 200-epoch RSA backbone as Table 5.
local t5 = include("table5.lua")
return {
  extends = t5,
  title = "Table 6: COCO, Mask R-CNN R50-FPN, 2x schedule (AP)",
  report = { kind = "coco", table = "T6", coco = "2x", rows = "arm", cols = { "dataset" } },
}
