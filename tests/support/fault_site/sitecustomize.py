"""Arms the tests' fault hook in a Python process started with this folder on PYTHONPATH.

Only processes started by a fault test (`fault_hook.child_env`) have it there; Python runs
`sitecustomize` at start-up, so a CLI run and the recording child it starts both get the hook.
The module is loaded from its file, so `tests/` never lands on the child's import path.
"""

import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location(
    "moee_test_fault_hook", Path(__file__).resolve().parents[1] / "fault_hook.py"
)
assert _spec is not None and _spec.loader is not None
_module = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_module)
_module.install_from_env()
