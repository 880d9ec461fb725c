"""Start the model server inside a workload's environment.

Run as a script with the environment's Python: the environment's packages come first
(the model's own scikit-learn version), Dockyard and its dependencies are appended from
``DOCKYARD_APPEND_PATH``.
"""

import os
import sys

if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
    del sys.path[0]
sys.path.extend(p for p in os.environ.get("DOCKYARD_APPEND_PATH", "").split(os.pathsep) if p)

from dockyard.serving.cli import main

main()
