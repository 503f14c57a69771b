"""AP (methods/ap.py): the selection rule on hand-built tensors, the mixin's θ_ref, the registry."""
import pytest
import torch
from torch import nn

import methods
from methods.ap import APEvent, ap_keep_masks
from methods.base import MaskedMethod
from methods.masks import magnitude_scores, masks_from_scores

# Two tensors, 12 weights. Negative weights and their movement |θ − θ_ref|:
#   a1 −0.20 (0.05)  a3 −0.40 (0.40)  a5 −0.60 (0.01)  a7 −0.80 (0.50)  b0 −0.05 (0.05)  b2 −0.90 (0.20)
W = {"a": torch.tensor([0.10, -0.20, 0.30, -0.40, 0.50, -0.60, 0.70, -0.80]),
     "b": torch.tensor([[-0.05, 0.15], [-0.90, 1.00]])}
REF = {"a": torch.tensor([0.00, -0.25, 0.00, 0.00, 0.00, -0.61, 0.00, -0.30]),
       "b": torch.tensor([[0.00, 0.00], [-0.70, 0.00]])}


def all_kept():
    return {n: torch.ones_like(w, dtype=torch.bool) for n, w in W.items()}


def pruned(masks):
    """Sorted names of the removed positions, e.g. ['a0', 'b1']."""
    return sorted(f"{n}{i}" for n, m in masks.items()
                  for i in (~m.bool()).flatten().nonzero().flatten().tolist())


def select(kept, sparsity, share, scope="global"):
    scores = magnitude_scores(W, kept)
    proposed = masks_from_scores(scores, sparsity, scope=scope)
    return ap_keep_masks(kept, proposed, scores, W, REF, share, scope)


def test_global_event_removes_exactly_k_with_round_share_k_by_the_ap_rule():
    # magnitude alone would remove the 5 smallest |W|: b0 .05, a0 .10, b1 .15, a1 .20, a2 .30
    masks, event = select(all_kept(), 5 / 12, share=0.4)
    # k_ap = round(0.4·5) = 2; magnitude removes its 3 smallest (b0, a0, b1); among the negative
    # survivors a1 a3 a5 a7 b2, AP removes the two that moved least: a5 (0.01) and a1 (0.05)
    assert pruned(masks) == ["a0", "a1", "a5", "b0", "b1"]
    assert event == APEvent(removed=5, ap_target=2, by_ap=2)
    assert all(W[p[0]].flatten()[int(p[1:])] < 0 for p in ["a1", "a5"])


def test_rounding_of_the_ap_count():
    _, event = select(all_kept(), 5 / 12, share=0.5)  # round(2.5) = 2 (Python rounds half to even)
    assert event.ap_target == 2
    _, event = select(all_kept(), 5 / 12, share=0.25)  # round(1.25) = 1
    assert event.ap_target == 1


def test_already_pruned_weights_are_not_counted_or_chosen_again():
    kept = all_kept()
    kept["a"][5] = False  # a5 (the slowest negative) was pruned at an earlier event
    kept["b"][0, 0] = False  # so was b0
    masks, event = select(kept, 6 / 12, share=0.5)
    # 4 new removals: magnitude's a0 a1 b1 a2 → k_ap = 2; magnitude keeps removing a0, b1;
    # negative survivors a1 (0.05) a3 (0.40) a7 (0.50) b2 (0.20) → AP takes a1 and b2
    assert pruned(masks) == ["a0", "a1", "a5", "b0", "b1", "b2"]
    assert event == APEvent(removed=4, ap_target=2, by_ap=2)


def test_layer_scope_keeps_each_tensors_budget_and_takes_round_share_k_l_in_it():
    masks, event = select(all_kept(), 6 / 12, share=0.5, scope="layer")
    # uniform budget: a loses 4, b loses 2. In a: k_ap = 2, magnitude removes a0 a1, AP the
    # slowest negatives a5 (0.01) and a3 (0.40). In b: k_ap = 1, magnitude removes b0, AP b2.
    assert pruned(masks) == ["a0", "a1", "a3", "a5", "b0", "b2"]
    assert int((~masks["a"]).sum()) == 4 and int((~masks["b"]).sum()) == 2
    assert event == APEvent(removed=6, ap_target=3, by_ap=3)


def test_too_few_negative_survivors_the_base_removes_the_rest():
    w = {"a": torch.tensor([0.1, 0.2, 0.3, 0.4, -0.5, 0.6, 0.7, 0.8])}
    ref = {"a": torch.zeros(8)}
    kept = {"a": torch.ones(8, dtype=torch.bool)}
    scores = magnitude_scores(w)
    proposed = masks_from_scores(scores, 4 / 8)
    masks, event = ap_keep_masks(kept, proposed, scores, w, ref, share=0.75)
    # k = 4, k_ap = 3: magnitude removes a0; the only negative survivor a4 goes to AP; the 2 missing
    # go back to magnitude's own order (a1, a2): still exactly 4 removed
    assert pruned(masks) == ["a0", "a1", "a2", "a4"]
    assert event == APEvent(removed=4, ap_target=3, by_ap=1)


def test_equal_movement_goes_to_the_lower_index_and_share_zero_is_the_base():
    ref = {n: w.clone() for n, w in W.items()}  # nothing moved: every movement is 0
    scores = magnitude_scores(W)
    proposed = masks_from_scores(scores, 2 / 12)
    masks, _ = ap_keep_masks(all_kept(), proposed, scores, W, ref, share=0.5)
    assert pruned(masks) == ["a1", "b0"]  # magnitude: b0; AP: a1, the first negative survivor
    masks, event = ap_keep_masks(all_kept(), proposed, scores, W, REF, share=0.0)
    assert all(torch.equal(masks[n], proposed[n]) for n in W) and event.ap_target == 0


# ---------------------------------------------------------------------------------------------
# the mixin on a generic MaskedMethod: θ_ref is the weights right after the previous event

class Manual(MaskedMethod):
    """A base that prunes only when told (stands in for any method with prune events)."""
    name = "manual"
    Hparams = methods.hparams.MaskHparams


class Bypass(Manual):
    name = "bypass"

    def prune_to(self, sparsity):
        self.set_masks(masks_from_scores(self.scores(), sparsity))  # not through select_masks


@pytest.fixture
def registry(monkeypatch):
    for cls in (Manual, Bypass):
        monkeypatch.setitem(methods._REGISTRY, cls.name, cls)


def linear_with(weight: torch.Tensor) -> nn.Module:
    model = nn.Sequential(nn.Linear(weight.shape[1], weight.shape[0], bias=False))
    with torch.no_grad():
        model[0].weight.copy_(weight)
    return model


def test_the_wrapper_is_generic_and_its_reference_moves_to_each_event(registry):
    w0 = torch.tensor([[0.1, -0.2, 0.3, -0.4, 0.5, -0.6, 0.7, -0.8]])
    model = linear_with(w0)
    method = methods.get_method("manual+ap", ap_share=0.5)
    method.attach(model, torch.optim.SGD(model.parameters(), lr=0.1), 10, 1)
    method.after_backward(1)  # θ_ref = the weights at attach time
    assert torch.equal(method.ap_reference["0.weight"], w0)
    with torch.no_grad():  # "training": a3 and a7 move a lot, a1 and a5 little
        model[0].weight.copy_(torch.tensor([[0.1, -0.22, 0.3, -0.9, 0.5, -0.65, 0.7, -0.15]]))
    method.prune_to(2 / 8)  # k = 2, k_ap = 1: magnitude takes a0 (not a7); AP the slowest negative, a1
    assert pruned({"a": method.masks["0.weight"]}) == ["a0", "a1"]
    assert method.ap_events == [APEvent(2, 1, 1)]
    assert torch.equal(method.ap_reference["0.weight"], w0)  # refreshed at the next step, not before
    after_event = model[0].weight.detach().clone()
    method.after_backward(2)
    assert torch.equal(method.ap_reference["0.weight"], after_event)
    with torch.no_grad():  # since the event a5 moves most (0.45), a3 least (0.001)
        model[0].weight.add_(torch.tensor([[0.0, 0.0, 0.0, 0.001, 0.0, 0.45, 0.0, 0.0]]))
    method.prune_to(4 / 8)  # k = 2: magnitude takes a7 (0.15, not a5 at 0.2); AP a3, not a5
    assert pruned({"a": method.masks["0.weight"]}) == ["a0", "a1", "a3", "a7"]
    assert method.ap_events[-1] == APEvent(2, 1, 1)


def test_a_base_whose_prune_to_skips_select_masks_is_an_error_not_a_silent_no_op(registry):
    model = linear_with(torch.randn(3, 4))
    method = methods.get_method("bypass+ap")
    method.attach(model, torch.optim.SGD(model.parameters(), lr=0.1), 10, 1)
    with pytest.raises(RuntimeError, match="did not call select_masks"):
        method.prune_to(0.5)


def test_checkpoint_state_keeps_the_reference(registry):
    model = linear_with(torch.randn(3, 4))
    method = methods.get_method("manual+ap")
    method.attach(model, torch.optim.SGD(model.parameters(), lr=0.1), 10, 1)
    method.after_backward(1)
    method.prune_to(0.5)
    state = method.state_dict()
    other = methods.get_method("manual+ap")
    other.attach(linear_with(torch.randn(3, 4)), torch.optim.SGD(model.parameters(), lr=0.1), 10, 1)
    other.load_state_dict(state)
    assert torch.equal(other.ap_reference["0.weight"], method.ap_reference["0.weight"])
    assert other._ap_pending and torch.equal(other.masks["0.weight"], method.masks["0.weight"])


# ---------------------------------------------------------------------------------------------
# the registry

BASES = "dnr, gmp, granet, granet-st, imp, magnitude, random"


def test_composed_names_are_listed_with_their_bases_and_hparams():
    names = methods.available_methods()
    for base in ["gmp", "imp", "magnitude", "random"]:
        assert f"{base}+ap" in names and base in methods.ap_bases()
    assert "dense+ap" not in names and "ap" not in names
    assert f"base one of: {BASES}" in methods.modifier_descriptions()["ap"]
    method = methods.get_method("gmp+ap", 0.9, end_frac="0.8", ap_share="0.2")
    assert (method.hp.end_frac, method.hp.ap_share) == (0.8, 0.2)
    assert method.label() == "gmp+ap[ap_share=0.2,end_frac=0.8]"
    assert methods.get_method("imp+ap", 0.9).hp.ap_share == 0.1
    assert methods.get_method_class("gmp+ap") is methods.get_method_class("gmp+ap")
    assert "ap_share" not in {f.name for f in methods.method_hparam_fields("gmp")}
    with pytest.raises(ValueError, match=r"ap_share must be in \[0.0, 1.0\]"):
        methods.get_method("gmp+ap", 0.9, ap_share=1.5)


@pytest.mark.parametrize("name, message", [
    ("grda+ap", f"'grda+ap': AP rides on prune events and 'grda' has none; bases that work: {BASES}"),
    ("rigl+ap", f"'rigl+ap': AP rides on prune events and 'rigl' has none; bases that work: {BASES}"),
    ("set+ap", "'set+ap': AP rides on prune events and 'set' has none"),
    ("dense+ap", f"'dense+ap': AP rides on prune events and 'dense' has none; bases that work: {BASES}"),
    ("ap", f"'ap': 'ap' is a modifier, not a method; write <base>+ap with base one of: {BASES}"),
    ("ap+gmp", "'ap' is a modifier, not a method"),
    ("gmp+ap+ap", "'gmp+ap+ap' applies ap more than once; write gmp+ap"),
    ("gmp+xy", "unknown modifier 'xy' in 'gmp+xy'"),
    ("nope+ap", "unknown method 'nope' in 'nope+ap'; choose from: demp, dense, dnr, gmp"),
])
def test_the_registry_refuses_what_ap_cannot_ride_on(name, message):
    with pytest.raises(ValueError) as err:
        methods.get_method(name, 0.5)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_every_method_without_prune_events_is_refused():
    for name, cls in methods._REGISTRY.items():
        if not cls.has_prune_events:
            with pytest.raises(ValueError, match="has none; bases that work"):
                methods.get_method_class(name + "+ap")
