"""Methods: the registry, the shared method contract, and the built-in methods.

Importing this package registers the built-in methods; nothing else in the code base enumerates them.
"""

from sslbench.methods import builtin  # noqa: F401  (registers the built-in methods)
from sslbench.methods.base import Batch, EMATeacherMixin, Method, MethodContext
from sslbench.methods.registry import get_method, list_methods, register

__all__ = ["Batch", "EMATeacherMixin", "Method", "MethodContext", "get_method", "list_methods", "register"]
