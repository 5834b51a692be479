"""ardens: neural autoregressive density estimation (NADE, MADE) with exact likelihoods.

>>> import torch, ardens
>>> model = ardens.MADE(n_inputs=8, hidden=[32])
>>> model.log_prob(torch.zeros(2, 8)).shape
torch.Size([2])
"""

from .deepnade import DeepNADE
from .made import MADE, MaskedLinear
from .nade import NADE
from .serialization import load, read_metadata, save

__all__ = ["DeepNADE", "MADE", "MaskedLinear", "NADE", "load", "read_metadata", "save"]
__version__ = "0.1.0"
