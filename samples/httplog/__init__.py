"""The httplog app as an installed package, ``mosfw_httplog``: ``mosfw run -p httplog``
loads :mod:`mosfw_httplog.app` (the ``mosfw.plugins`` entry point ``httplog``);
from a checkout, ``-p samples/httplog`` loads the same app.py."""
