"""The catalogue of registered methods for the reports: citation and visual identity, without torch.

It holds exactly the names of :mod:`methods`' registry (a test checks it, so a new method cannot
be registered without its entry here), in the registry's order; the report layer, which reads
only JSON and never imports torch (importing :mod:`methods` would), names, cites and colours
every method from it. Each method keeps one colour and one marker in every figure of every grid: the
colour is fixed here, not assigned per grid from the labels it happens to contain.

Colours: the Okabe–Ito palette (Okabe & Ito, *Color Universal Design*, 2008) for the seed methods
and the most-used baselines, then four of Paul Tol's *muted* scheme (Tol, *Colour Schemes*, SRON
technical note, 2021) — both designed to stay distinct under the common colour-vision
deficiencies. Two methods that share a colour never share a marker. ``dense`` is dark grey.
A method outside the catalogue (a user's own, see :func:`visual`) gets a colour and marker from a
hash of its name: stable across grids, though not guaranteed distinct from a catalogued one.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

#: Suffix of the AP modifier in a method name (``gmp+ap``); equal to :data:`methods.ap.SUFFIX` (tested).
AP_SUFFIX = "+ap"


@dataclass(frozen=True)
class MethodInfo:
    """A registered method's citation (``cite``: short, ``reference``: full) and visual identity."""

    name: str
    cite: str
    reference: str
    color: str
    marker: str


_OKABE_ITO = {"orange": "#E69F00", "sky": "#56B4E9", "green": "#009E73", "yellow": "#F0E442",
              "blue": "#0072B2", "vermillion": "#D55E00", "purple": "#CC79A7"}
_TOL_MUTED = {"wine": "#882255", "olive": "#999933", "indigo": "#332288", "teal": "#44AA99"}
DENSE_COLOR = "#3a3a3a"

CATALOG: dict[str, MethodInfo] = {m.name: m for m in [
    MethodInfo("dense", "—", "No pruning: the accuracy ceiling of the grid.", DENSE_COLOR, "o"),
    MethodInfo("random", "Blalock et al. 2020",
               "Random masks, the sanity floor of Blalock, Gonzalez Ortiz, Frankle & Guttag, "
               "What is the State of Neural Network Pruning?, MLSys 2020.", "#BBBBBB", "x"),
    MethodInfo("magnitude", "Han et al. 2015",
               "Han, Pool, Tran & Dally, Learning both Weights and Connections for Efficient Neural "
               "Networks, NeurIPS 2015.", _OKABE_ITO["sky"], "s"),
    MethodInfo("gmp", "Zhu & Gupta 2018",
               "Zhu & Gupta, To prune, or not to prune: exploring the efficacy of pruning for model "
               "compression, ICLR workshop 2018 (arXiv 1710.01878).", _OKABE_ITO["blue"], "o"),
    MethodInfo("imp", "Frankle & Carbin 2019",
               "Frankle & Carbin, The Lottery Ticket Hypothesis, ICLR 2019; rewinding from Frankle, "
               "Dziugaite, Roy & Carbin, Linear Mode Connectivity and the Lottery Ticket Hypothesis, "
               "ICML 2020.", _TOL_MUTED["olive"], "v"),
    MethodInfo("granet", "Liu et al. 2021",
               "Liu, Chen, Chen, Atashgahi, Yin, Kou, Shen, Pechenizkiy, Wang & Mocanu, Sparse Training "
               "via Boosting Pruning Plasticity with Neuroregeneration, NeurIPS 2021.",
               _OKABE_ITO["green"], "^"),
    MethodInfo("granet-st", "Liu et al. 2021",
               "GraNet's sparse-to-sparse variant: Liu et al., Sparse Training via Boosting Pruning "
               "Plasticity with Neuroregeneration, NeurIPS 2021.", _TOL_MUTED["teal"], "<"),
    MethodInfo("rigl", "Evci et al. 2020",
               "Evci, Gale, Menick, Castro & Elsen, Rigging the Lottery: Making All Tickets Winners, "
               "ICML 2020.", _TOL_MUTED["indigo"], ">"),
    MethodInfo("set", "Mocanu et al. 2018",
               "Mocanu, Mocanu, Stone, Nguyen, Gibescu & Liotta, Scalable training of artificial neural "
               "networks with adaptive sparse connectivity inspired by network science, Nature "
               "Communications 2018.", _TOL_MUTED["wine"], "h"),
    MethodInfo("grda", "Chao et al. 2020",
               "Chao, Wang, Xing & Cheng, Directional Pruning of Deep Neural Networks, NeurIPS 2020.",
               _OKABE_ITO["orange"], "D"),
    MethodInfo("dnr", "Wang & Jiang 2025",
               "Wang & Jiang, DNR-Pruning: Sparsity-Aware Pruning via Dying Neuron Reactivation in "
               "Convolutional Neural Networks, TMLR 2025 (our reconstruction).",
               _OKABE_ITO["vermillion"], "P"),
    MethodInfo("demp", "Dufort-Labbé et al. 2024",
               "Dufort-Labbé, D'Oro, Nikishin, Pascanu, Bacon & Baratin, Maxwell's Demon at Work: "
               "Efficient Pruning by Leveraging Saturation of Neurons, arXiv 2403.07688.",
               _OKABE_ITO["purple"], "X"),
]}

AP_INFO = ("Liu et al. 2023", "Liu, Ghosh, Tan & Motani, AP: Selective Activation for De-sparsifying "
           "Pruned Neural Networks (Activate-while-Pruning), TMLR 2023.")
_FALLBACK_COLORS = ["#E69F00", "#56B4E9", "#009E73", "#0072B2", "#D55E00", "#CC79A7", "#882255",
                    "#999933", "#332288", "#44AA99", "#117733", "#AA4499"]
_FALLBACK_MARKERS = ["o", "s", "^", "D", "v", "P", "X", "<", ">", "h", "*", "p"]


def split_name(method: str) -> tuple[str, bool]:
    """(base method, whether AP rides on it) of a method name: ``gmp+ap`` → ``("gmp", True)``."""
    return (method[:-len(AP_SUFFIX)], True) if method.endswith(AP_SUFFIX) else (method, False)


def visual(base: str) -> tuple[str, str]:
    """(colour, marker) of a base method: the catalogue's, else stable ones from a hash of the name."""
    if base in CATALOG:
        return CATALOG[base].color, CATALOG[base].marker
    digest = int(hashlib.sha256(base.encode()).hexdigest(), 16)
    return (_FALLBACK_COLORS[digest % len(_FALLBACK_COLORS)],
            _FALLBACK_MARKERS[(digest // len(_FALLBACK_COLORS)) % len(_FALLBACK_MARKERS)])


def citation(method: str) -> tuple[str, str]:
    """(short, full) citation of a method name, AP's added after the base's for ``x+ap``."""
    base, with_ap = split_name(method)
    info = CATALOG.get(base)
    short, full = (info.cite, info.reference) if info else ("—", "not a registered method")
    if with_ap:
        short, full = f"{short}; {AP_INFO[0]}", f"{full} With AP: {AP_INFO[1]}"
    return short, full
