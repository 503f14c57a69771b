"""Model zoo for prunebench.

Every model takes float inputs of shape (N, C, H, W) and returns logits (N, num_classes).
Conventions the pruning harness relies on:

* each activation is its own module instance (see :mod:`models.activations`), found with
  ``isinstance(m, ACTIVATION_TYPES)``; forward hooks on them see each hidden unit once;
* prunable layers are the ``nn.Conv2d`` / ``nn.Linear`` modules; the first of them in
  ``model.modules()`` order is the input layer and the last ``nn.Linear`` is the classifier;
* :func:`get_model` applies :func:`init_weights` (Kaiming-normal fan_out convs, BN 1/0,
  default Linear), so seeding right before it fixes the weights. Instantiating a model
  class directly leaves PyTorch's default initialisation.
"""
from models.activations import ACTIVATION_TYPES, available_activations, make_activation
from models.external import is_external
from models.registry import available_models, get_model, init_weights, model_descriptions, register_model

__all__ = [
    "ACTIVATION_TYPES",
    "available_activations",
    "available_models",
    "get_model",
    "init_weights",
    "is_external",
    "make_activation",
    "model_descriptions",
    "register_model",
]
