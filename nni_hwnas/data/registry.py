"""The dataset registry: built-in names and any a package adds through an entry point.

A dataset is a :class:`DatasetEntry`: a loader taking one :class:`DatasetRequest` (plain data the
config already validated) and returning :class:`~nni_hwnas.data.splits.DatasetSplits`, plus the
augmentation it gets by default and the ``dataset`` options it reads. Packages register more in
the ``nni_hwnas.datasets`` entry-point group, pointing at a ``DatasetEntry`` or at a bare loader
function, e.g. in their ``pyproject.toml``::

    [project.entry-points."nni_hwnas.datasets"]
    my_scans = "my_pkg.data:load_scans"

Built-ins are entries too, so the CLI, the trial processes and a plug-in all go through one lookup.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from nni_hwnas.data.augment import AugmentSpec
from nni_hwnas.errors import UserError, unknown

__all__ = ["ENTRY_POINT_GROUP", "DatasetEntry", "DatasetRequest", "check_options", "dataset_entries", "get_entry",
           "register_dataset"]

#: Entry-point group a package uses to add datasets by name.
ENTRY_POINT_GROUP = "nni_hwnas.datasets"

#: ``dataset`` options beyond name/data_root/download/fractions/augment; an entry lists those it reads.
EXTRA_OPTIONS = ("path", "keys", "image_size", "cache")


@dataclass(frozen=True)
class DatasetRequest:
    """Everything a loader may read: the validated ``dataset`` section plus the run's seed."""

    name: str
    root: Path
    seed: int = 0
    download: bool = False
    val_fraction: float = 0.2
    test_fraction: float = 0.2
    augment: AugmentSpec = field(default_factory=AugmentSpec)
    options: Mapping[str, Any] = field(default_factory=dict)

    def option(self, key: str, default: Any = None) -> Any:
        value = self.options.get(key)
        return default if value is None else value


Loader = Callable[[DatasetRequest], Any]


@dataclass(frozen=True)
class DatasetEntry:
    """A named dataset: its loader, default augmentation and the extra options it accepts."""

    name: str
    load: Loader
    augment: AugmentSpec = field(default_factory=AugmentSpec)
    options: tuple[str, ...] = ()
    description: str = ""


_REGISTERED: dict[str, DatasetEntry] = {}


def register_dataset(entry: DatasetEntry) -> None:
    """Add or replace a dataset at run time (tests, notebooks); packages use the entry point."""
    _REGISTERED[entry.name] = entry


_BUILTIN_SOURCES: list = []  # callables giving the built-in entries; nni_hwnas.data adds builtin.entries


def provide_builtin(entries: Callable[[], Iterable[DatasetEntry]]) -> None:
    """Declare where built-in entries come from: the package does this for :mod:`nni_hwnas.data.builtin`,
    so the registry never imports the loaders that import it (no import cycle)."""
    if entries not in _BUILTIN_SOURCES:
        _BUILTIN_SOURCES.append(entries)


def _builtin_entries() -> dict[str, DatasetEntry]:
    return {e.name: e for source in _BUILTIN_SOURCES for e in source()}


def _plugin_entries() -> dict[str, DatasetEntry]:
    """Entries from installed packages; one that fails to import is named with its package."""
    found: dict[str, DatasetEntry] = {}
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            target = ep.load()
        except Exception as exc:  # any import error of a third-party package
            pkg = getattr(getattr(ep, "dist", None), "name", None) or ep.value
            raise UserError(f"dataset plug-in {ep.name!r} ({ep.value}, from {pkg}) failed to load "
                            f"({type(exc).__name__}: {exc}); fix or uninstall that package") from exc
        if isinstance(target, DatasetEntry):
            found[ep.name] = target if target.name == ep.name else DatasetEntry(
                ep.name, target.load, target.augment, target.options, target.description)
        elif callable(target):
            found[ep.name] = DatasetEntry(ep.name, target, options=EXTRA_OPTIONS, description=f"plug-in {ep.value}")
        else:
            raise UserError(f"dataset plug-in {ep.name!r} ({ep.value}) is a {type(target).__name__}, not a "
                            "DatasetEntry or loader function; point the entry point at one of those")
    return found


def dataset_entries() -> dict[str, DatasetEntry]:
    """All datasets by name: built-ins, then plug-ins, then run-time registrations (later wins)."""
    return {**_builtin_entries(), **_plugin_entries(), **_REGISTERED}


def get_entry(name: str) -> DatasetEntry:
    entries = dataset_entries()
    if name not in entries:
        raise unknown("dataset", name, entries)
    return entries[name]


def check_options(entry: DatasetEntry, options: Mapping[str, Any]) -> None:
    """Refuse an extra option the dataset would silently ignore (e.g. ``keys`` for cifar10)."""
    for key in EXTRA_OPTIONS:
        if options.get(key) in (None, {}, True) or key in entry.options:
            continue
        if entry.name == "cifar10" and key == "path":
            raise UserError("dataset.path is not read by cifar10 (it reads the official python batches under "
                            "data_root); for a rebuilt or JPEG copy of CIFAR-10 use name: folder")
        readers = sorted(e.name for e in dataset_entries().values() if key in e.options)
        raise UserError(f"dataset.{key} is not read by dataset {entry.name!r}; remove it "
                        f"(datasets that read it: {', '.join(readers)})")
