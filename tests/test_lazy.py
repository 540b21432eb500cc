"""remaster.lazy: a package's names imported from its modules on first use, then kept."""

from __future__ import annotations

import sys

import pytest

from remaster.lazy import LazyExports


@pytest.fixture
def package(tmp_path, monkeypatch):
    """A throw-away package `lazypkg` whose `__init__` re-exports `VALUE` from `lazypkg.heavy` lazily."""
    root = tmp_path / "lazypkg"
    root.mkdir()
    (root / "__init__.py").write_text(
        "from remaster.lazy import LazyExports\n"
        "_lazy = LazyExports(globals(), {'VALUE': 'heavy'})\n"
        "def __getattr__(name):\n    return _lazy.get(name)\n"
        "def __dir__():\n    return _lazy.names()\n")
    (root / "heavy.py").write_text("VALUE = 42\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "lazypkg"
    for name in [m for m in sys.modules if m == "lazypkg" or m.startswith("lazypkg.")]:
        del sys.modules[name]


def test_a_name_is_imported_on_first_use_and_kept(package):
    module = __import__(package)
    assert "lazypkg.heavy" not in sys.modules
    assert "VALUE" in dir(module)
    assert module.VALUE == 42
    assert "lazypkg.heavy" in sys.modules
    assert vars(module)["VALUE"] == 42  # stored: the next look-up does not reach __getattr__


def test_an_unknown_name_is_an_attribute_error(package):
    module = __import__(package)
    with pytest.raises(AttributeError, match="module 'lazypkg' has no attribute 'nope'"):
        _ = module.nope
    assert not hasattr(module, "nope")


def test_names_lists_defined_and_lazy_names():
    namespace = {"__name__": "pkg", "defined": 1}
    assert LazyExports(namespace, {"later": "mod"}).names() == ["__name__", "defined", "later"]
