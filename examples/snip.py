"""A prunebench plugin in one file: SNIP, pruning at initialisation by connection sensitivity.

Lee, Ajanthan & Torr, *SNIP: Single-shot Network Pruning based on Connection Sensitivity*,
ICLR 2019. Before the first optimizer step, every prunable weight is scored by |∂L/∂w · w| on the
run's first training batch (the same batch every method of a seed sees) and the lowest-scoring
weights are removed at once to the target; the mask then stays fixed for the whole training.
Deviations: the paper draws one dedicated batch and scores with the network at variance-scaling
initialisation; here the batch is the run's first and the initialisation is the grid's (both shared
with every other method, which is what a fair comparison needs). The paper's normalisation of the
scores by their sum does not change which weights a global threshold keeps, so it is left out.

Use it without installing anything:

    python run_benchmarks.py --plugin examples.snip --methods snip gmp --sparsities 0.9

What makes it first-class: importing this module registers the class with :func:`methods.register`,
the same function the built-in methods go through, so ``--list`` shows it, its hyperparameters
(:class:`methods.hparams.MaskHparams`: scope, budget, prune_first, prune_classifier) become flags,
and its runs get run ids, leaderboard rows and plots — in every worker, since ``--plugin`` is
imported there too.
"""
from __future__ import annotations

from torch import Tensor

import methods
from methods.base import MaskedMethod
from methods.hparams import MaskHparams


class SNIP(MaskedMethod):
    """SNIP (Lee et al., ICLR 2019); see the module docstring."""

    name = "snip"
    description = ("SNIP: one-shot pruning before training by |gradient × weight| on the first batch "
                   "(Lee et al. 2019)")
    Hparams = MaskHparams
    state_attributes = ("pruned",)

    def attach(self, model, optimizer, steps_per_epoch, total_epochs) -> None:
        super().attach(model, optimizer, steps_per_epoch, total_epochs)
        self.pruned = self.target_sparsity == 0

    def scores(self) -> dict[str, Tensor]:
        """Connection sensitivity |∂L/∂w · w| of every prunable weight (the gradients must be set).

        The one prune event goes through :meth:`prune_to` with these scores, so a modifier that
        rides on prune events (``snip+ap``) composes with it like with the built-ins."""
        return {name: (w.grad * w).detach().abs() for name, w in self.weights.items()}

    def after_backward(self, step: int) -> None:
        if not self.pruned:  # the first backward pass: gradients of the first batch, weights at init
            self.prune_to(self.target_sparsity)
            self.pruned = True
        super().after_backward(step)


methods.register(SNIP)
