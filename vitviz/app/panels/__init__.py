"""The window's panels, one class per file. Each takes the :class:`~vitviz.app.state.ViewState`, draws from it and
changes the view only through it; panels never call each other."""

from .attention import AttentionPanel
from .depth import DepthPanel
from .details import DetailsPanel
from .evidence import EvidencePanel
from .features import FeaturesPanel
from .head_atlas import HeadAtlasPanel
from .input import InputPanel
from .lens import LensPanel
from .predictions import PredictionsPanel

__all__ = ["InputPanel", "PredictionsPanel", "AttentionPanel", "FeaturesPanel", "HeadAtlasPanel", "DepthPanel",
           "EvidencePanel", "LensPanel", "DetailsPanel"]
