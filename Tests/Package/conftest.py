"""The Debian package's tests reuse the real-mount fixtures of Tests/Integration (an obs-local
on a free loopback port, server-side checks). They run as a pytest directory of their own, last in
scripts/test: building the package relinks the debug executables (statically) in place."""
import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location("integration_conftest", Path(__file__).resolve().parents[1] / "Integration" / "conftest.py")
_integration = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_integration)

BIN_DIR, OBS_LOCAL, OBSMOUNT, REPO = _integration.BIN_DIR, _integration.OBS_LOCAL, _integration.OBSMOUNT, _integration.REPO
is_mounted = _integration.is_mounted
obs_local = _integration.obs_local
