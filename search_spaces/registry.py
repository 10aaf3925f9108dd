"""Look up spaces and presets by name; build definitions (pure) or NNI model spaces."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence


from nni_hwnas.errors import UserError, read_yaml, unknown

from .conv_net import ConvNetDefinition
from .definition import SpaceDefinition
from .medmnist_cnn import MedmnistCnnDefinition
from .staged_net import StagedNetDefinition
from .nb201 import Nb201Definition

DEFINITIONS: dict[str, type[SpaceDefinition]] = {
    ConvNetDefinition.name: ConvNetDefinition,
    MedmnistCnnDefinition.name: MedmnistCnnDefinition,
    StagedNetDefinition.name: StagedNetDefinition,
    Nb201Definition.name: Nb201Definition,
}
PRESET_DIR = Path(__file__).resolve().parent / "presets"


def space_names() -> list[str]:
    return sorted(DEFINITIONS)


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def load_preset(name_or_path: str | Path) -> tuple[str, dict[str, list]]:
    """Read a preset (a bundled name, or a YAML path) into ``(space name, choices)``."""
    path = Path(name_or_path)
    if not (path.suffix in (".yaml", ".yml") and path.exists()):
        if str(name_or_path) not in preset_names():
            raise unknown("space preset", str(name_or_path), preset_names())
        path = PRESET_DIR / f"{name_or_path}.yaml"
    data = read_yaml(path, "preset")
    if not isinstance(data, dict) or set(data) - {"space", "choices"} or "space" not in data:
        raise UserError(f"preset {path} must be a mapping with keys 'space' and 'choices'")
    space = data["space"]
    if space not in DEFINITIONS:
        raise unknown("space", space, DEFINITIONS)
    return space, dict(data.get("choices") or {})


def make_definition(space: str, choices: Mapping[str, Sequence] | None,
                    input_shape: Sequence[int], num_classes: int) -> SpaceDefinition:
    """Validated pure description of a space (no NNI import)."""
    if space not in DEFINITIONS:
        raise unknown("space", space, DEFINITIONS)
    return DEFINITIONS[space].create(choices, input_shape, num_classes)


def make_model_space(space: str, choices: Mapping[str, Sequence] | None,
                     input_shape: Sequence[int], num_classes: int) -> Any:
    """The NNI ``ModelSpace`` for a space (imports ``nni.nas``: seconds, so only when needed)."""
    definition = make_definition(space, choices, input_shape, num_classes)
    if space == "nb201":
        from .nb201_model import Nb201Space

        return Nb201Space(choices={k: list(v) for k, v in definition.choices.items()},
                          input_shape=list(definition.input_shape), num_classes=definition.num_classes)
    from .model_space import ConvNetSpace, MedmnistCnnSpace, StagedNetSpace

    classes = {"conv_net": ConvNetSpace, "medmnist_cnn": MedmnistCnnSpace, "staged_net": StagedNetSpace}
    return classes[space](choices={k: list(v) for k, v in definition.choices.items()},
                          input_shape=list(definition.input_shape), num_classes=definition.num_classes)


def label_kinds(definition: SpaceDefinition) -> dict[str, str]:
    """label -> the choice kind it draws from (``conv3_kernel`` -> ``kernel``).

    ``labels()`` hands out each kind's own value tuple, so identity tells the kind of a label.
    """
    by_identity = {id(values): kind for kind, values in definition.choices.items()}
    return {label: by_identity[id(values)] for label, values in definition.labels().items()}


def definition_from_labels(space: str, labels: Mapping[str, Sequence]) -> SpaceDefinition:
    """Rebuild a definition from a search-space's labels (an nnictl JSON), for identity and dedup.

    Kinds fixed to one value are absent from such files; they take any allowed value, which changes
    nothing about which labels a sample uses. Any valid shape serves: labels do not depend on it.
    """
    if space not in DEFINITIONS:
        raise unknown("space", space, DEFINITIONS)
    cls = DEFINITIONS[space]
    probe_choices = {"depth": list(labels["depth"])} if "depth" in labels else None
    probe = cls.create(probe_choices, (1, 8, 8), 10)
    kinds = label_kinds(probe)
    choices: dict[str, list] = {}
    for label, values in labels.items():
        if label not in kinds:
            raise UserError(f"search space label {label!r} is not a choice of space {space!r}; "
                            f"its labels: {', '.join(kinds)}")
        kind = kinds[label]
        if kind in choices and list(choices[kind]) != list(values):
            raise UserError(f"search space labels of kind {kind!r} disagree ({label!r} has {list(values)}); "
                            f"write the file with `nni-hwnas export-space`")
        choices[kind] = list(values)
    for kind in cls.rules:
        choices.setdefault(kind, [cls.defaults[kind][0]])
    return cls.create(choices, (1, 8, 8), 10)
