"""Where the repository and the test fixtures are, wherever a test module sits."""

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures"
