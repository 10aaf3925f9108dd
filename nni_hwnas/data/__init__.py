"""Datasets: built-in names, image folders, npz arrays and plug-ins, one registry."""

from nni_hwnas.data import builtin as _builtin
from nni_hwnas.data.registry import provide_builtin as _provide_builtin

_provide_builtin(_builtin.entries)
