import os

import pytest

# Tests never reach a model or dataset hub: everything they load is written by the test
# or shipped by an installed package.
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# "fastest" precision settings resolve to float32 on every machine, so that no test's
# outcome or time depends on whether the CPU computes bfloat16 natively; the tests of the
# choice itself set the variable they need.
os.environ["PRIMEBENCH_CPU_BF16"] = "0"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--runslow", action="store_true", default=False, help="also run tests marked slow"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --runslow (CI does)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
