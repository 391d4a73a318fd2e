"""A user's script, written as one writes it for timm: transfer learning from pretrained weights in
one's own loop, then fc7 features, torch.compile, torch.export, fx feature extraction and torch.hub,
each checked against the eager network's numbers. tests/test_python_api.py runs it; alone:

    python tests/user_script.py WEIGHTS.pth IMAGE_FOLDER
"""

import copy
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

import alexnet

REPO = Path(__file__).resolve().parents[1]  # the checkout: its hubconf.py


def fx_extractor(model: torch.nn.Module, return_nodes: list[str]) -> torch.fx.GraphModule:
    """torchvision's create_feature_extractor in a few lines: trace, return the named modules'
    outputs, drop the layers they do not need."""
    gm = torch.fx.symbolic_trace(model)
    nodes = {n.target: n for n in gm.graph.nodes if n.op == "call_module"}
    output = next(n for n in gm.graph.nodes if n.op == "output")
    output.args = ({name: nodes[name] for name in return_nodes},)
    gm.graph.eliminate_dead_code()
    gm.recompile()
    return gm


def close(a: torch.Tensor, b: torch.Tensor, what: str, tol: float = 1e-4) -> float:
    err = float((a - b).abs().max() / b.abs().max().clamp(min=1e-12))
    assert err <= tol, f"{what}: max relative difference {err:.2e}"
    return err


def main(weights, folder, steps: int = 20, batch_size: int = 8, backend: str = "inductor") -> dict:
    torch.manual_seed(0)
    model = alexnet.create_model("alexnet_owt", pretrained=weights, num_classes=10, seed=0)
    cfg = alexnet.resolve_data_config({}, model=model)
    dataset = alexnet.data.ImageFolder(folder, transform=alexnet.create_transform(**cfg, train=True))
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, drop_last=True)
    evaluate = alexnet.create_transform(**cfg)

    # the loop: plain torch, the pretrained trunk frozen
    for p in model.features.parameters():
        p.requires_grad_(False)
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01, momentum=0.9)
    model.train()
    losses = []
    while len(losses) < steps:
        for x, y in loader:
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
            if len(losses) == steps:
                break

    model.eval()
    x = torch.stack([evaluate(dataset.load(i)) for i in range(4)])
    out = {"losses": losses, "x": x, "model": model}
    with torch.no_grad():
        logits = out["logits"] = model(x)
        fc7 = model.forward_head(model.forward_features(x), pre_logits=True)

        headless = copy.deepcopy(model)
        headless.reset_classifier(0)  # timm's num_classes=0: the pooled/fc7 features
        out["features"] = headless(x)
        assert headless.num_classes == 0 and out["features"].shape == (4, model.num_features)
        close(out["features"], fc7, "reset_classifier(0) vs forward_head(pre_logits=True)", 0)

        compiled = torch.compile(model, fullgraph=True, backend=backend)
        out["compiled"] = close(compiled(x), logits, "torch.compile")

        batch = torch.export.Dim("batch")
        exported = torch.export.export(model, (x,), dynamic_shapes=({0: batch},))
        out["exported"] = close(exported.module()(x[:3]), logits[:3], "torch.export at another batch size")

        extractor = fx_extractor(model, ["features.11", "classifier.5"])  # conv5's ReLU, fc7's ReLU
        # (the trunk was frozen: the pretrained weights' stage maps are the trained model's)
        maps = extractor(x)
        trunk = alexnet.create_model("alexnet_owt", pretrained=weights, features_only=True, out_indices=[2])
        out["fx"] = close(maps["features.11"], trunk(x)[0], "fx features.11 vs features_only stage 2", 0)
        close(maps["classifier.5"], fc7, "fx classifier.5 vs fc7", 0)

        hub = torch.hub.load(
            str(REPO), "alexnet_owt", source="local", pretrained=weights, num_classes=10, seed=0
        )
        again = alexnet.create_model("alexnet_owt", pretrained=weights, num_classes=10, seed=0).eval()
        out["hub"] = close(hub.eval()(x), again(x), "torch.hub.load", 0)
    return out


if __name__ == "__main__":
    result = main(sys.argv[1], sys.argv[2])
    print(
        f"loss {result['losses'][0]:.3f} -> {result['losses'][-1]:.3f}; compiled, exported, fx and hub agree"
    )
