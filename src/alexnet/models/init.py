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
    named = {
        f"{'local' if isinstance(m, LocallyConnected2d) else 'conv'}{i + 1}": m for i, m in enumerate(convs)
    }
    named.update({f"fc{len(convs) + i + 1}": m for i, m in enumerate(fcs)})
    return named


# §5 (paper) and bvlc_alexnet's train_val.prototxt fillers (caffe): the layers whose biases are
# not 0, and the Gaussian std where it is not 0.01
_BIAS = {
    "paper": dict.fromkeys(("conv2", "conv4", "conv5", "fc6", "fc7"), 1.0),
    "caffe": dict.fromkeys(("conv2", "conv4", "conv5", "fc6", "fc7"), 0.1),
}
_STD = {"paper": {}, "caffe": {"fc6": 0.005, "fc7": 0.005}}


def init_layer(m: nn.Module, name: str, scheme: str, init_std: dict[str, float] | None = None) -> None:
    """Initialise one conv/fc layer, named by its position (conv1.., fc6..), from torch's RNG;
    `init_std` is the model's own per-layer std table (cuda-convnet's cfg initW values)."""
    if scheme == "cuda-convnet":
        # cuda-convnet's layer.py: weights initW * randn (initW a standard deviation, 0.01 where
        # a layer's cfg gives none), biases initB = 0
        nn.init.normal_(m.weight, 0.0, (init_std or {}).get(name, 0.01))
        nn.init.zeros_(m.bias)
    elif scheme in ("paper", "caffe"):
        # paper §5: "We initialized the weights in each layer from a zero-mean Gaussian distribution
        # with standard deviation 0.01. We initialized the neuron biases in the second, fourth,
        # and fifth convolutional layers, as well as in the fully-connected hidden layers, with
        # the constant 1 ... remaining layers with the constant 0." Caffe: std 0.005 in fc6/fc7, bias 0.1.
        nn.init.normal_(m.weight, 0.0, _STD[scheme].get(name, 0.01))
        nn.init.constant_(m.bias, _BIAS[scheme].get(name, 0.0))
    elif scheme == "glorot":  # Keras' defaults: Glorot-uniform kernels, zero biases
        nn.init.xavier_uniform_(m.weight)
        nn.init.zeros_(m.bias)
    else:  # PyTorch's own defaults (kaiming-uniform with a=sqrt(5))
        m.reset_parameters()


def init_weights(model: nn.Module, scheme: str) -> None:
    """Initialise in place from torch's current RNG (seed it, or fork it, around the call)."""
    if scheme not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {scheme!r}")
    std = getattr(model, "init_std", None) or {}
    for name, m in named_weight_layers(model).items():
        init_layer(m, name, scheme, std)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.reset_parameters()
