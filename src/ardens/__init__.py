"""ardens: neural autoregressive density estimation (NADE, MADE, DeepNADE) for binary, categorical,
real-valued and mixed data, with exact likelihoods.

>>> import torch, ardens
>>> model = ardens.MADE(n_inputs=8, hidden=[32])
>>> model.log_prob(torch.zeros(2, 8)).shape
torch.Size([2])
"""

# the documented submodules import with the package: ardens.data, ardens.train, ardens.evaluate, ...
from . import data, evaluate, fetch, heads, train
from .deepnade import DeepNADE
from .estimator import DensityEstimator
from .made import MADE, MaskedLinear
from .nade import NADE
from .serialization import load, read_metadata, save

__all__ = [
    "DeepNADE",
    "DensityEstimator",
    "MADE",
    "MaskedLinear",
    "NADE",
    "data",
    "evaluate",
    "fetch",
    "heads",
    "load",
    "read_metadata",
    "save",
    "train",
]
__version__ = "0.1.0"
