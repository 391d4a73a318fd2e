"""Every network traces as one graph: torch.fx.symbolic_trace, torch.compile(fullgraph=True) and
torch.export with a dynamic batch, each computing the eager network's numbers; the native LRN
kernel is a proper custom op, loaded when the layer is built and never inside forward."""

import pytest
import torch

import alexnet
from alexnet.nn import lrn as lrn_mod
from alexnet.nn import native


@pytest.fixture(scope="module", params=alexnet.list_models())
def net(request):
    torch.manual_seed(0)
    m = alexnet.create_model(request.param, seed=0).eval()
    x = torch.randn(2, m.in_channels, m.input_size, m.input_size)
    with torch.no_grad():
        return m, x, m(x)


def test_fx_symbolic_trace(net):
    m, x, ref = net
    gm = torch.fx.symbolic_trace(m)
    with torch.no_grad():
        assert torch.equal(gm(x), ref)
    targets = {n.target for n in gm.graph.nodes if n.op == "call_function"}
    assert any(getattr(t, "__name__", "") == "check_input" for t in targets)  # the input check is kept
    with pytest.raises(ValueError, match="expects input of shape"):
        gm(torch.zeros(1, m.in_channels + 1, m.input_size, m.input_size))


def test_compile_fullgraph(net):
    """fullgraph=True fails on any graph break; the eager backend traces without code generation
    (the inductor test below generates code for one LRN net)."""
    m, x, ref = net
    torch._dynamo.reset()
    with torch.no_grad():
        assert torch.allclose(torch.compile(m, fullgraph=True, backend="eager")(x), ref, rtol=1e-5, atol=1e-6)


def test_export_with_dynamic_batch(net):
    m, x, ref = net
    ep = torch.export.export(m, (x,), dynamic_shapes=({0: torch.export.Dim("batch")},))
    with torch.no_grad():
        y = ep.module()(torch.cat([x, x[:1]]))
    assert y.shape[0] == 3 and torch.allclose(y[:2], ref, rtol=1e-4, atol=1e-5)


def test_inductor_on_cpu_forward_and_backward():
    """The LRN net of Fig. 1 through CPU inductor: the C kernel stays one opaque custom op."""
    m = alexnet.create_model("cifar_convnet", seed=0)
    x = torch.randn(4, 3, 32, 32)
    ref = m(x)
    ref.square().sum().backward()
    grads = [p.grad.clone() for p in m.parameters()]
    m.zero_grad()
    torch._dynamo.reset()
    out = torch.compile(m, fullgraph=True)(x)
    out.square().sum().backward()
    assert torch.allclose(out, ref, rtol=1e-4, atol=1e-5)
    assert all(torch.allclose(p.grad, g, rtol=1e-3, atol=1e-5) for p, g in zip(m.parameters(), grads))


def test_lrn_custom_op_and_nothing_loads_in_forward(monkeypatch):
    if not lrn_mod.load_native():
        pytest.skip("no C compiler here: the native kernel cannot be built")
    x = torch.randn(2, 8, 5, 5, requires_grad=True)
    torch.library.opcheck(torch.ops.alexnet.lrn_native.default, (x, 5, 1e-4, 0.75, 2.0))
    m = alexnet.create_model("caffenet", seed=0)

    def refuse(*a, **k):
        raise AssertionError("forward loaded a library")

    monkeypatch.setattr(native, "load", refuse)  # built: forward and backward need nothing more
    m(torch.randn(1, 3, 227, 227)).sum().backward()


def test_jit_script_says_use_export():
    """TorchScript is deprecated upstream: one line pointing to torch.export (tested above)."""
    for m in (alexnet.create_model("alexnet_owt"), alexnet.create_model("caffenet", features_only=True)):
        with pytest.raises(
            RuntimeError, match=r"torch.jit.script is not supported .* use torch.export.export"
        ):
            torch.jit.script(m)
