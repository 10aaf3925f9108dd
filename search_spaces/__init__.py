"""nni-hwnas model spaces: pure definitions plus NNI ``ModelSpace`` adapters (see ``registry``)."""

from .registry import load_preset, make_definition, make_model_space, preset_names, space_names

__all__ = ["load_preset", "make_definition", "make_model_space", "preset_names", "space_names"]
