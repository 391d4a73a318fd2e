"""The help line of every training setting, grouped as `alexnet train --help` shows them.

One entry per TrainConfig field: (group, text). cli/train.py appends the default from the
dataclass and the presets that differ from it, so the help never drifts from the code (a test
checks that every field has an entry).
"""

from __future__ import annotations

GROUPS = ("data", "model", "optimisation", "run")

HELP: dict[str, tuple[str, str]] = {
    # data (§2, §4.1)
    "data": (
        "data",
        "training data: a folder (<class>/*.jpg, train/ + val/), a .tar, shards "
        "train-{000..099}.tar, a CIFAR-10/Fashion-MNIST archive, or cifar10 / fashion-mnist",
    ),
    "val_data": ("data", "validation data, when --data has no val/test split"),
    "labels": ("data", "labels file (<file> <label> per line) for a flat validation folder"),
    "resize": (
        "data",
        "shorter side the images are stored at before cropping (§2: 256); 0: the "
        "data's native size (CIFAR's 32)",
    ),
    "crop": ("data", "side of the random training crop (§4.1: 224/227); unset: the model's input size"),
    "mean": ("data", "subtract the mean image (§2, 'image') or the per-channel mean ('channel')"),
    "stats": (
        "data",
        "statistics file from `alexnet stats` (mean image, PCA eigen-pairs); unset: "
        "computed into RUN/stats.pt",
    ),
    "pixel_scale": (
        "data",
        "network input = (pixels/255 - mean) x this / std: 255 for the paper's 0-255 pixels, 1 for 0-1",
    ),
    "std": ("data", "per-channel std to divide by (torchvision: 0.229 0.224 0.225)"),
    "flip": ("data", "random horizontal reflections (§4.1)"),
    "pca_std": ("data", "σ of the PCA colour noise (§4.1); 0 turns it off"),
    "random_resized_crop": (
        "data",
        "Inception-style random-area crops instead of the paper's fixed-size ones",
    ),
    "eval_crops": ("data", "validation crops: 'center' or '10' (§4.1: four corners + centre, mirrored)"),
    # model (§3)
    "model": (
        "model",
        "network from `alexnet models`; it brings its own recipe (the preset its unset settings come from)",
    ),
    "model_kw": ("model", "model options as JSON, e.g. '{\"groups\": 1}' for one tower (§3.2)"),
    "init_from": ("model", "start from these pretrained weights (fine-tuning)"),
    "train_layers": ("model", "layers to train when fine-tuning, e.g. fc6,fc7,fc8; 'all' trains every layer"),
    "lr_mult": ("model", "per-layer learning-rate multipliers as JSON, e.g. '{\"fc8\": 10}'"),
    "decay_mult": (
        "model",
        "per-layer weight-decay multipliers as JSON, e.g. '{\"conv1\": 0}' "
        "(cuda-convnet's per-layer wc, Caffe's decay_mult)",
    ),
    "towers_on": ("model", "two devices for the two towers of §3.2, e.g. cuda:0,cuda:1 (model parallelism)"),
    # optimisation (§5)
    "epochs": ("optimisation", "passes over the training set (§5: roughly 90)"),
    "batch_size": (
        "optimisation",
        "images per step, in total over all processes (§5: 128); torchrun splits it evenly over the ranks",
    ),
    "lr": (
        "optimisation",
        "learning rate ε (§5: 0.01, divided by 10 when the validation error stops improving)",
    ),
    "momentum": ("optimisation", "momentum (§5: 0.9)"),
    "weight_decay": ("optimisation", "weight decay (§5: 0.0005)"),
    "update_rule": ("optimisation", "'paper' (§5: ε inside the momentum) or 'torch' (torch.optim.SGD)"),
    "bias_lr_mult": ("optimisation", "learning-rate multiplier for biases (Caffe: 2)"),
    "bias_decay": ("optimisation", "apply weight decay to biases too"),
    "schedule": (
        "optimisation",
        "'plateau' (§5: ÷10 when val error stops improving), 'step', "
        "'multistep' (÷10 after each of --milestones) or 'constant'",
    ),
    "gamma": ("optimisation", "factor of each learning-rate drop (§5: 0.1)"),
    "patience": ("optimisation", "plateau: epochs without improvement before a drop"),
    "max_drops": ("optimisation", "plateau: most drops (§5: 'reduced three times')"),
    "step_size": ("optimisation", "step: drop every this many step units"),
    "step_unit": ("optimisation", "step: 'epoch' or 'iter'"),
    "milestones": (
        "optimisation",
        "multistep: the epochs after which the learning rate is multiplied by --gamma",
    ),
    "max_iters": ("optimisation", "deprecated: the old name of --max-steps (Caffe's max_iter)"),
    "seed": ("optimisation", "seed of the weights, the data order and the augmentation"),
    # run
    "device": ("run", "cpu, cuda or cuda:N"),
    "precision": (
        "run",
        "auto (bf16 autocast where the CPU/GPU multiplies bf16 natively, else fp32), fp32, bf16 or fp16",
    ),
    "channels_last": ("run", "NHWC memory format (faster convolutions on CPU and GPU)"),
    "compile": ("run", "torch.compile the network (measured slower than eager on CPU, so off)"),
    "cuda_graphs": (
        "run",
        "replay the network's kernels as CUDA graphs (torch.compile mode reduce-overhead); CUDA only",
    ),
    "workers": (
        "run",
        "data-loading processes; auto: on CUDA the cores left beside the main process, "
        "on CPU one per core up to 4 (per process under torchrun)",
    ),
    "run_dir": ("run", "folder of the run: config, metrics.csv, checkpoints, summary"),
    "checkpoint_every": ("run", "also save RUN/last.pt every this many steps; 0: at epoch ends only"),
    "max_steps": (
        "optimisation",
        "the run's total optimiser steps over all its invocations (a resumed run "
        "keeps it; --steps-this-invocation is the per-invocation slice)",
    ),
    "log_every": (
        "run",
        "steps between rows of RUN/steps.csv and TensorBoard's train/ curves (loss, lr, "
        "img/s), and between the host's reads of the device (a non-finite loss is noticed "
        "at most this many steps late)",
    ),
    "val_every": (
        "run",
        "also validate every this many steps (a metrics row, best.pt when it improved); "
        "every run validates at each epoch's end and at its own end",
    ),
    "limit_batches": ("run", "batches per epoch, train and validation (for smoke runs)"),
    "limit_train_batches": ("run", "training batches per epoch; wins over --limit-batches"),
    "limit_val_batches": ("run", "validation batches each time; wins over --limit-batches"),
    "target_train_error": ("run", "stop after the first epoch whose training error is at most this (Fig. 1)"),
}
