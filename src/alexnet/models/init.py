"""Weight initialisation schemes, seeded and reproducible.

Layers are named by their position, as in the paper: the k-th convolution is conv{k} and
the fully connected layers that follow continue the count (fc6, fc7, fc8 for AlexNet). A locally
connected layer counts as a convolution and is called local{k} (cuda-convnet's local3, local4).
"""
from __future__ import annotations

from torch import nn

from ..nn import LocallyConnected2d

INITS = ("paper", "caffe", "kaiming", "glorot", "cuda-convnet")


def named_weight_layers(model: nn.Module) -> dict[str, nn.Module]:
    """conv1..convK (local{k} where the k-th is locally connected) then fc(K+1).. in module order."""
    convs = [m for m in model.modules() if isinstance(m, (nn.Conv2d, LocallyConnected2d))]
    fcs = [m for m in model.modules() if isinstance(m, nn.Linear)]
    named = {f"{'local' if isinstance(m, LocallyConnected2d) else 'conv'}{i + 1}": m
             for i, m in enumerate(convs)}
    named.update({f"fc{len(convs) + i + 1}": m for i, m in enumerate(fcs)})
    return named


def _gaussian(layers: dict[str, nn.Module], std: dict[str, float], bias: dict[str, float]) -> None:
    for name, m in layers.items():
        nn.init.normal_(m.weight, 0.0, std.get(name, 0.01))
        nn.init.constant_(m.bias, bias.get(name, 0.0))


def init_weights(model: nn.Module, scheme: str) -> None:
    """Initialise in place from torch's current RNG (seed it, or fork it, around the call)."""
    if scheme not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {scheme!r}")
    layers = named_weight_layers(model)
    if scheme == "paper":
        # §5: "We initialized the weights in each layer from a zero-mean Gaussian distribution
        # with standard deviation 0.01. We initialized the neuron biases in the second, fourth,
        # and fifth convolutional layers, as well as in the fully-connected hidden layers, with
        # the constant 1 ... remaining layers with the constant 0."
        ones = {n: 1.0 for n in ("conv2", "conv4", "conv5", "fc6", "fc7")}
        _gaussian(layers, {}, ones)
    elif scheme == "caffe":
        # bvlc_alexnet train_val.prototxt fillers: gaussian std 0.01 (fc6/fc7: 0.005);
        # bias 0.1 in conv2, conv4, conv5, fc6, fc7, else 0
        std = {"fc6": 0.005, "fc7": 0.005}
        _gaussian(layers, std, {n: 0.1 for n in ("conv2", "conv4", "conv5", "fc6", "fc7")})
    elif scheme == "cuda-convnet":
        # cuda-convnet's layer.py: weights initW * randn (initW a standard deviation, 0.01 where
        # a layer's cfg gives none), biases initB = 0; the model carries its cfg's initW values
        _gaussian(layers, getattr(model, "init_std", {}), {})
    elif scheme == "glorot":  # Keras' defaults: Glorot-uniform kernels, zero biases
        for m in layers.values():
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)
    else:  # PyTorch's own defaults (kaiming-uniform with a=sqrt(5))
        for m in layers.values():
            m.reset_parameters()
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.reset_parameters()
