"""Model registry: the CLI finds models by name; the classes themselves take plain typed arguments."""

from __future__ import annotations

from typing import Callable

MODELS: dict[str, type] = {}


def register(name: str) -> Callable[[type], type]:
    """Class decorator: make ``cls`` buildable as ``name`` from the CLI and configs."""

    def deco(cls: type) -> type:
        if name in MODELS and MODELS[name] is not cls:
            raise ValueError(f"model name {name!r} registered twice")
        MODELS[name] = cls
        cls.registry_name = name
        return cls

    return deco


def get_model_class(name: str) -> type:
    _import_all()
    try:
        return MODELS[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; available: {', '.join(sorted(MODELS))}") from None


def available_models() -> list[str]:
    _import_all()
    return sorted(MODELS)


def _import_all() -> None:
    """Import the model packages so their ``@register`` decorators run."""
    import importlib
    import pkgutil

    from . import multitask, ondevice, ranking, retrieval

    for pkg in (retrieval, ranking, multitask, ondevice):
        for mod in pkgutil.iter_modules(pkg.__path__):
            if not mod.name.startswith("_"):
                importlib.import_module(f"{pkg.__name__}.{mod.name}")
