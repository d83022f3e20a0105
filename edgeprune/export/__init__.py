
from ..api import callable_package  # noqa: E402  (edgeprune.export(...) is the Python API's export)

callable_package(__name__, "export")
