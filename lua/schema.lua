-- The one schema of rsa-repro experiments: every key an experiment file may set, with its type, default, allowed
-- values and meaning. lua/dsl.lua validates against it, `rsa help config` prints it, and lua/toconfig.c reads the
-- validated run keys into the trainer's TrainConfig (trainer/train/config.h).
--
-- Two kinds of keys:
--   run keys         define one training run; after resolution every run has every run key (defaults filled in);
--                    the canonical serialisation of them is hashed into the run id (except keys with hash = false,
--                    which change where or how fast a run goes, never its numbers; keys with hash =
--                    "unless_default", added after runs existed, are hashed only when they differ from the default).
--   structure keys   shape the experiment: extends, sweep, scales, seeds, report, ...; they are not hashed.
--
-- Field meanings: type = "string" | "integer" | "number" | "boolean" | "enum" | "list" | "struct" | "schedule"
-- | "any"; allowed = list (enum); default = value or function(c) of the run keys resolved so far (then default_doc
-- says it in words); min/max (numbers); words = strings an integer key also takes (loader_threads' "auto");
-- of = the element type of a list; len = a fixed list length; fields = the
-- sub-schema of a struct; presets = names a struct may be given as instead (expanded before validation).

local S = {}

local function is_imagenet(c) return c.dataset == "imagenet100" or c.dataset == "imagenet" end
local function is_r50(c) return type(c.backbone) == "table" and c.backbone.block == "bottleneck" end

S.datasets = { "cifar10", "cifar100", "stl10", "tinyimagenet", "imagenet100", "imagenet", "fashionmnist" }
S.methods = { "rsa", "byol", "simclr", "mocov2", "simsiam" }

-- Backbone presets (trainer/nn/nets.h: RESNET18_CIFAR, RESNET50).
S.backbone_presets = {
  resnet18 = { block = "basic", layers = { 2, 2, 2, 2 }, width = 64, stem = "cifar" },
  resnet50 = { block = "bottleneck", layers = { 3, 4, 6, 3 }, width = 64, stem = "imagenet" },
  resnet18_imagenet = { block = "basic", layers = { 2, 2, 2, 2 }, width = 64, stem = "imagenet" },
}

S.run = {
  -- data ----------------------------------------------------------------------------------------------------------
  { key = "dataset", group = "data", type = "enum", allowed = S.datasets, default = "cifar10",
    doc = "the data set (trainer/data/data.h lists the files each needs); fashionmnist is the stand-in of the " ..
          "reduced scales (Debian's dataset-fashion-mnist)" },
  { key = "data_root", group = "data", type = "string", default = "", hash = false,
    doc = "directory holding the data sets; \"\": $RSA_DATA, else data/ (rsa run --data DIR sets it)" },
  { key = "subset", group = "data", type = "integer", min = 0, default = 0,
    doc = "pretrain on a fixed random subset of this many images (the same images for every seed and method); " ..
          "0: all (in-memory data sets only)" },
  { key = "eval_subset", group = "data", type = "integer", min = 0, default = 0,
    doc = "linear evaluation and kNN bank on this many labelled training images; 0: all" },
  { key = "image_size", group = "data", type = "integer", min = 0, default = 0,
    doc = "view size in pixels; 0: the data set's (32 CIFAR and Fashion-MNIST, 64 STL-10 and Tiny ImageNet, " ..
          "224 ImageNet)" },
  { key = "loader_threads", group = "data", type = "integer", min = 0, max = 256, words = { "auto" },
    default = "auto", hash = false,
    doc = "data loader threads (batches do not depend on it); auto: 2 on the cpu backend, a GPU process's share " ..
          "of its node's cores on cuda (at most 32)" },

  -- networks ------------------------------------------------------------------------------------------------------
  { key = "backbone", group = "network", type = "struct", presets = S.backbone_presets,
    default = function(c) return is_imagenet(c) and "resnet50" or "resnet18" end,
    default_doc = "\"resnet18\" (CIFAR stem), \"resnet50\" for imagenet100/imagenet",
    doc = "the encoder: a preset name (resnet18, resnet50, resnet18_imagenet) or a table",
    fields = {
      { key = "block", type = "enum", allowed = { "basic", "bottleneck" }, default = "basic",
        doc = "basic (ResNet-18/34) or bottleneck (ResNet-50) blocks" },
      { key = "layers", type = "list", of = "integer", len = 4, min = 0, default = { 2, 2, 2, 2 },
        doc = "blocks per stage; a 0 drops that stage and the later ones" },
      { key = "width", type = "integer", min = 1, default = 64, doc = "channels of the first stage (torchvision: 64)" },
      { key = "stem", type = "enum", allowed = { "cifar", "imagenet" }, default = "cifar",
        doc = "cifar: 3x3 stride-1 conv, no max-pool (the paper's, also at 64 px); imagenet: 7x7/2 conv + max-pool" },
    } },
  { key = "stem_init", group = "network", type = "enum", allowed = { "kaiming", "conv2d" }, default = "kaiming",
    hash = "unless_default",
    doc = "the stem convolution's initial weights. kaiming: torchvision's for every convolution (normal, fan_out); " ..
          "conv2d: nn.Conv2d's own (uniform within 1/sqrt(fan_in)), what the official BYOL.py's ResNet-18 gets, " ..
          "whose 3x3 stem replaces torchvision's after torchvision initialised it (the CIFAR, STL-10 and Tiny " ..
          "ImageNet bases set it; its ResNet-50 keeps torchvision's)" },
  { key = "proj_hidden", group = "network", type = "integer", min = 1,
    default = function(c) return is_r50(c) and 4096 or 1024 end, default_doc = "1024 (4096 with bottleneck blocks)",
    doc = "hidden width of the projector and predictor MLPs" },
  { key = "proj_out", group = "network", type = "integer", min = 1,
    default = function(c) return is_r50(c) and 256 or 128 end, default_doc = "128 (256 with bottleneck blocks)",
    doc = "output width of the projector and predictor" },
  { key = "pred_hidden", group = "network", type = "integer", min = 0, default = 0,
    doc = "hidden width of the predictor when it differs from proj_hidden (SimSiam's bottleneck: 512); 0: proj_hidden" },

  -- method --------------------------------------------------------------------------------------------------------
  { key = "method", group = "method", type = "enum", allowed = S.methods, default = "rsa",
    doc = "rsa, byol (the official code's methods), simclr, mocov2, simsiam (the baselines of Tables 2 and 3)" },
  { key = "views", group = "method", type = "enum", allowed = { "ma", "aa", "aw", "ww" },
    default = function(c) return c.method == "rsa" and "ma" or "aa" end, default_doc = "\"ma\" for rsa, else \"aa\"",
    doc = "ma: two weak views and an aggressive view made from each (RSA); aa: two aggressive views; " ..
          "aw: one aggressive, one weak; ww: two weak" },
  { key = "beta_base", group = "method", type = "number", min = 0, max = 1, default = 0.4,
    doc = "RSA's mixing weight at the start (the official code's default 0.4; the paper: 0.3 CIFAR, 0.4 others)" },
  { key = "beta_schedule", group = "method", type = "schedule", allowed = { "decay", "fixed" }, default = "decay",
    doc = "decay: beta_base (cos(pi k/K) + 1)/2; fixed: beta_base; or function(p, s) returning beta at progress " ..
          "p = k/K (k = 1..K, the step counter after its increment; s = {step, steps, epoch, steps_per_epoch, " ..
          "beta_base, base_lr}), sampled per step before training" },
  { key = "tau_base", group = "method", type = "number", min = 0, max = 1, default = 0.99,
    doc = "EMA: tau = 1 - (1 - tau_base)(cos(pi k/K) + 1)/2 (BYOL, RSA); MoCo v2: the fixed momentum" },
  { key = "temperature", group = "method", type = "number", min = 0,
    default = function(c) return c.method == "mocov2" and 0.2 or 0.5 end, default_doc = "0.5 (0.2 for mocov2)",
    doc = "softmax temperature of SimCLR and MoCo v2" },
  { key = "queue_size", group = "method", type = "integer", min = 0, default = 4096,
    doc = "MoCo v2's negative queue length" },

  -- optimisation --------------------------------------------------------------------------------------------------
  { key = "epochs", group = "optimisation", type = "integer", min = 0,
    default = function(c) return is_imagenet(c) and 100 or 200 end, default_doc = "200 (100 for imagenet100/imagenet)",
    doc = "pretraining epochs; 0 evaluates the randomly initialised encoder (the 'random init' row)" },
  { key = "batch", group = "optimisation", type = "integer", min = 2, default = 256,
    doc = "GLOBAL batch size (the per-GPU share is batch / world size, printed by rsa run)" },
  { key = "optimizer", group = "optimisation", type = "enum", allowed = { "sgd", "lars" }, default = "sgd",
    doc = "sgd (momentum) or lars (trust ratio lars_trust; 1-D parameters excluded from adaptation)" },
  { key = "lr", group = "optimisation", type = "number", min = 0,
    default = function(c) return is_imagenet(c) and 0.2 or 0.1 end, default_doc = "0.1 (0.2 for imagenet100/imagenet)",
    doc = "learning rate per 256 images, scaled by lr_scaling" },
  { key = "lr_scaling", group = "optimisation", type = "enum", allowed = { "floor", "linear" }, default = "floor",
    doc = "floor: lr * (batch // 256) as the official code (0 below 256!); linear: lr * batch / 256" },
  { key = "lr_schedule", group = "optimisation", type = "schedule", allowed = { "cosine_epoch", "cosine_step" },
    default = function(c) return is_imagenet(c) and "cosine_step" or "cosine_epoch" end,
    default_doc = "\"cosine_epoch\" (\"cosine_step\" for imagenet100/imagenet)",
    doc = "cosine_epoch: cosine set once per epoch (small data sets); cosine_step: per iteration, after " ..
          "warmup_epochs of linear warmup; or function(p, s) returning the learning rate itself at progress " ..
          "p = (k-1)/K, sampled per step" },
  { key = "warmup_epochs", group = "optimisation", type = "integer", min = 0, default = 0,
    doc = "linear warmup epochs (cosine_step only; ImageNet-1K: 10)" },
  { key = "weight_decay", group = "optimisation", type = "number", min = 0,
    default = function(c) return is_imagenet(c) and 1e-4 or 5e-4 end, default_doc = "5e-4 (1e-4 for imagenet100/imagenet)",
    doc = "weight decay" },
  { key = "momentum", group = "optimisation", type = "number", min = 0, max = 1, default = 0.9, doc = "SGD/LARS momentum" },
  { key = "lars_trust", group = "optimisation", type = "number", min = 0, default = 0.001, doc = "LARS trust coefficient" },
  { key = "decay_1d", group = "optimisation", type = "boolean", default = true,
    doc = "weight decay on 1-D parameters (biases, BN); the ImageNet-1K protocol excludes them (false)" },
  { key = "sync_bn", group = "optimisation", type = "boolean", default = false,
    doc = "data-parallel runs: BN statistics over the global batch (the official ImageNet-1K setting); no effect " ..
          "on one process" },
  { key = "bn_group", group = "optimisation", type = "integer", min = 0, default = 0, hash = "unless_default",
    doc = "pretraining BN statistics over groups of this many images of each process's batch, as that many GPUs " ..
          "without SyncBN compute them (the running statistics follow the first group, as DDP keeps rank 0's): " ..
          "the paper's 4-GPU ImageNet-100 runs (64 per GPU) on any number of GPUs that divides 4. 0: each " ..
          "process's whole batch. Must divide each process's batch; not with sync_bn; evaluation passes ignore it" },

  -- evaluation ----------------------------------------------------------------------------------------------------
  { key = "linear", group = "evaluation", type = "enum", allowed = { "small", "meanshift" },
    default = function(c) return is_imagenet(c) and "meanshift" or "small" end,
    default_doc = "\"small\" (\"meanshift\" for imagenet100/imagenet)",
    doc = "linear protocol: small (eval_single.py: lr 30, Nesterov, 100 epochs) or meanshift (normalised and " ..
          "standardised features, lr 0.01, 40 epochs)" },
  { key = "linear_epochs", group = "evaluation", type = "integer", min = 0,
    default = function(c) return c.linear == "meanshift" and 40 or 100 end, default_doc = "100 (40 meanshift)",
    doc = "epochs of the linear head; 0: no linear evaluation" },
  { key = "linear_batch", group = "evaluation", type = "integer", min = 1, default = 256, doc = "linear batch size" },
  { key = "linear_lr", group = "evaluation", type = "number", min = 0,
    default = function(c) return c.linear == "meanshift" and 0.01 or 30 end, default_doc = "30 (0.01 meanshift)",
    doc = "linear head learning rate" },
  { key = "linear_milestones", group = "evaluation", type = "list", of = "integer", len = 2, min = 0,
    default = function(c) return c.linear == "meanshift" and { 15, 30 } or { 60, 80 } end,
    default_doc = "{60, 80} ({15, 30} meanshift)", doc = "epochs where the linear lr is multiplied by 0.1" },
  { key = "linear_bn_train", group = "evaluation", type = "boolean", default = false,
    doc = "the official code's deviation: the encoder's BN left in train mode while fitting the head" },
  { key = "linear_best_epoch", group = "evaluation", type = "boolean", default = false,
    doc = "the official code's deviation: also test every epoch and report the best test accuracy " ..
          "(linear_best_top1; linear_top1 stays the last epoch's, the honest number)" },
  { key = "knn_every", group = "evaluation", type = "integer", min = 0, default = 10,
    doc = "epochs between kNN monitors (not in the paper; also run after the last epoch); 0: never" },
  { key = "knn_k", group = "evaluation", type = "integer", min = 1, default = 200, doc = "kNN neighbours" },
  { key = "knn_t", group = "evaluation", type = "number", min = 0, default = 0.1, doc = "kNN temperature" },

  -- run -----------------------------------------------------------------------------------------------------------
  { key = "seed", group = "run", type = "integer", min = 0, default = 0,
    doc = "seed of initialisation, augmentations and order (counter-based; set by the seed axis, see seeds)" },
  { key = "backend", group = "run", type = "enum", allowed = { "auto", "cpu", "cuda", "ref" }, default = "auto",
    doc = "compute backend; auto: cuda when this build has a usable GPU, else cpu (resolved before hashing)" },
  { key = "precision", group = "run", type = "enum", allowed = { "fp32", "tf32", "bf16", "fp16" }, default = "fp32",
    hash = "unless_default",
    doc = "pretraining math. fp32: strict; tf32: tensor-core convolutions and linear layers on the cuda backend " ..
          "(about 1e-3 relative; cpu and ref compute fp32); bf16, fp16: mixed precision on every backend, as " ..
          "PyTorch's CUDA autocast: activations and their gradients rounded to the format, fp32 accumulation, " ..
          "fp32 master weights, batch-norm statistics and losses; fp16 adds dynamic loss scaling (result.txt counts " ..
          "skipped steps). Evaluation reads fp32 features either way" },
  { key = "deterministic", group = "run", type = "boolean", default = true, hash = false,
    doc = "cuda: only the cuDNN algorithms it reports deterministic (the same bits on the same GPU and libraries); " ..
          "false: the fastest by timing. The cpu backend is deterministic at a fixed thread count either way; " ..
          "provenance.txt records which" },
  { key = "lowp_convolutions", group = "run", type = "boolean", default = true, hash = false,
    doc = "bf16, fp16: convolutions multiply the already-rounded values in the 16-bit format and sum in fp32 " ..
          "(oneDNN's bf16 kernels on AVX512-BF16 CPUs, cuDNN's tensor cores on the cuda backend): the products of " ..
          "fp32 arithmetic, other summation orders. false: fp32 convolutions on the rounded values (slower; how " ..
          "bf16 runs before 2026-12-01 computed, to rerun them bit for bit). provenance.txt records which" },
  { key = "lowp_weight_grads", group = "run", type = "boolean", default = false, hash = "unless_default",
    doc = "bf16, fp16: convolution and linear weight gradients summed in the format, as autocast hands them back " ..
          "(each pass's gradient rounded, then the sum over the passes; torch's .grad of a convolution under " ..
          "autocast is a 16-bit value). Lets the cuda backend compute them on tensor cores. false: fp32 sums, " ..
          "more precise than autocast. Batch-norm gradients stay fp32 either way; true with fp32 or tf32 is an " ..
          "error" },
  { key = "low_memory", group = "run", type = "boolean", default = true, hash = false,
    doc = "keep the activations of one online pass instead of two: the second view's pass runs again just before " ..
          "its backward (about 12 % more compute, about half the activation memory; the same bits)" },
  { key = "saved_16bit", group = "run", type = "boolean", default = false, hash = false,
    doc = "bf16, fp16: activations held from forward to backward may be kept as 16-bit copies, exact since the " ..
          "network has rounded them, where that makes the activation memory smaller (a third less at ResNet-50; " ..
          "the same bits; two more elementwise passes over each copied tensor: 4-10 % slower at the quick scale " ..
          "on a CPU, 1-3 % at ResNet-18 CIFAR)" },
  { key = "checkpoint_every", group = "run", type = "integer", min = 0, default = 0, hash = false,
    doc = "steps between checkpoints; 0: at epoch ends only (resume is exact either way)" },
}

-- Keys of an experiment file (and of a base file, a sweep overlay or a scale) that are not run keys.
S.structure = {
  { key = "extends", type = "any",
    doc = "a base: a file name (relative to this file, or to experiments/) or a table; its keys are defaults here" },
  { key = "name", type = "string", doc = "experiment name (report file names); default: the file name" },
  { key = "title", type = "string", doc = "title of the report" },
  { key = "notes", type = "string", doc = "free text printed above the report's table" },
  { key = "label", type = "string", doc = "an overlay's label (a sweep value given as a table)" },
  { key = "paper", type = "any",
    doc = "an overlay's identity in experiments/paper/numbers.csv: {method=, variant=, dataset=, epochs=}" },
  { key = "seeds", type = "integer", min = 1,
    doc = "seeds per cell: the seed axis is 0..seeds-1 (rsa run --seeds N replaces it); default 1" },
  { key = "sweep", type = "any",
    doc = "cartesian product of axes: {key = {values...}, ...} or an ordered list {{key = {values...}}, ...}; a " ..
          "value is a scalar for a run key, or an overlay table (with a label) of run keys" },
  { key = "scales", type = "any",
    doc = "named overlays (smoke, quick; paper is the file itself): run keys plus sweep (replaces axes of the " ..
          "same name), seeds, notes" },
  { key = "report", type = "struct", doc = "how the report lays out the runs",
    fields = {
      { key = "kind", type = "enum", allowed = { "table", "walltime", "beta_curve", "coco", "none" },
        doc = "table: ours | paper | gap cells; walltime: RSA/BYOL time ratio (Table 7); beta_curve: top-1 " ..
              "against beta_base (Fig. 3); coco: detectron2 runs on an exported backbone (Tables 5, 6)" },
      { key = "table", type = "string", doc = "the table's id in experiments/paper/numbers.csv (T1, T2, ...)" },
      { key = "rows", type = "string", doc = "the sweep axis whose labels are the rows" },
      { key = "cols", type = "list", of = "string", doc = "the sweep axes whose labels make the columns" },
      { key = "metric", type = "string", doc = "result.txt key shown in the cells (linear_top1, ...)" },
      { key = "coco", type = "string", doc = "coco: the schedule, 1x or 2x" },
      { key = "x", type = "string", doc = "beta_curve: the run key on the x axis" },
      { key = "best", type = "any", doc = "beta_curve: the paper's best x per column label" },
    } },
}

S.scales = { "paper", "quick", "smoke" }
S.scale_doc = {
  paper = "the exact published protocol (the file itself, no overlay)",
  quick = "minutes on a 2-core laptop: the Fashion-MNIST stand-in (32 px), a small ResNet, subsets, few epochs",
  smoke = "seconds: a few steps on a tiny subset (tests)",
}

return S
