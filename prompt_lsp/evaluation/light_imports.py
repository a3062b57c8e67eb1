"""Import a library without the package `__init__` it does not need.

rouge_score imports `nltk` for its Porter stemmer alone, and `nltk/__init__` (and `nltk.stem`'s)
import nearly all of nltk, scipy among it: seconds of CPU before the first model call of a run
scored with ROUGE. `defer_package` puts a package in `sys.modules` whose `__init__` runs only
when an attribute other than a submodule is asked for; importing a submodule
(`from nltk.stem import porter`) loads just that submodule.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
from types import ModuleType

_lock = threading.Lock()


def defer_package(name: str) -> None:
    """Register `name` (a package, not yet imported) with its `__init__` deferred."""
    with _lock:
        if name in sys.modules:
            return
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None or spec.submodule_search_locations is None:
            return
        module = importlib.util.module_from_spec(spec)

        def load_on_demand(attribute: str) -> object:
            if attribute.startswith("__"):
                raise AttributeError(attribute)
            if importlib.util.find_spec(f"{name}.{attribute}") is not None:
                return importlib.import_module(f"{name}.{attribute}")
            _run_init(module)
            return getattr(module, attribute)

        module.__getattr__ = load_on_demand  # type: ignore[method-assign]
        sys.modules[name] = module


def _run_init(module: ModuleType) -> None:
    """Run the deferred `__init__` now (once), into the module already in `sys.modules`."""
    with _lock:
        if "__getattr__" not in module.__dict__:
            return
        del module.__dict__["__getattr__"]
        spec = module.__spec__
        assert spec is not None and spec.loader is not None
        spec.loader.exec_module(module)
