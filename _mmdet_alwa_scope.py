"""Make ``_base_ = 'mmdet_alwa::...'`` work before ``mmdet_alwa`` is imported.

mmengine resolves a package-scoped config path (``'PKG::dir/file.py'``) only
for the packages in its table ``mmengine.config.utils.MODULE2PACKAGE``, and it
resolves ``_base_`` while parsing, before the config's ``custom_imports`` are
imported. The wheel installs ``mmdet_alwa-scope.pth``, whose one line imports
this module at interpreter start; it adds ``mmdet_alwa`` to that table when
mmengine loads the module, without importing mmengine (or anything else)
itself: a meta-path finder that steps in once, for that one module (the way
setuptools' ``distutils-precedence.pth`` shims ``distutils``). The configs
themselves are read from ``mmdet_alwa/.mim/configs`` (see ``setup.py``).
"""
import importlib.util
import sys

TABLE_MODULE = 'mmengine.config.utils'
SCOPE = 'mmdet_alwa'


def register(module) -> None:
    """Add our scope to the module's ``MODULE2PACKAGE`` table."""
    module.MODULE2PACKAGE.setdefault(SCOPE, SCOPE)


class _TableFinder:
    """Finds nothing itself: wraps the loader of ``TABLE_MODULE`` so that the
    table gets our entry right after the module runs, then leaves."""

    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name != TABLE_MODULE:
            return None
        sys.meta_path.remove(cls)
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def exec_and_register(module):
            exec_module(module)
            register(module)

        spec.loader.exec_module = exec_and_register
        return spec


def install() -> None:
    if TABLE_MODULE in sys.modules:
        register(sys.modules[TABLE_MODULE])
    elif _TableFinder not in sys.meta_path:
        sys.meta_path.insert(0, _TableFinder)


install()
