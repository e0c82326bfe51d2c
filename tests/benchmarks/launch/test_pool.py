"""The local job pool: slots refill as jobs end, every item is attempted, outcomes keep order."""

from __future__ import annotations

import pytest

from benchmarks.launch.pool import Outcome, run_pool, span


class Ticks:
    """A fake job that is done after ``length`` polls of the whole pool (one tick each)."""

    def __init__(self, name: str, length: int, fail: type | None = None):
        self.name, self.left, self.fail = name, length, fail

    def done(self) -> bool:
        self.left -= 1
        return self.left <= 0


def _run(
    lengths: dict[str, int], parallel: int, fail: dict | None = None, fatal=(), stop_after=None
):
    log: list = []
    running: set = set()
    peak = [0]

    def start(name: str) -> Ticks:
        running.add(name)
        peak[0] = max(peak[0], len(running))
        log.append(("start", name, sorted(running)))
        return Ticks(name, lengths[name], (fail or {}).get(name))

    def collect(job: Ticks) -> str:
        running.discard(job.name)
        log.append(("end", job.name))
        if job.fail is not None:
            raise job.fail(f"{job.name} broke")
        return job.name.upper()

    def stop() -> bool:  # true once ``stop_after`` items have started
        return stop_after is not None and sum(e[0] == "start" for e in log) >= stop_after

    outcomes = run_pool(list(lengths), parallel, start, collect, fatal=fatal, stop=stop, poll_s=0.0)
    return outcomes, log, peak[0]


def test_a_freed_slot_starts_the_next_item_while_a_long_one_still_runs():
    # Waves of two would hold "c" back until the long "a" ends; a pool starts it with "a"
    # still running, and "d" after "b" and "c".
    outcomes, log, peak = _run({"a": 10, "b": 1, "c": 1, "d": 1}, parallel=2)
    assert peak == 2
    starts = {entry[1]: entry[2] for entry in log if entry[0] == "start"}
    assert starts["c"] == ["a", "c"] and starts["d"] == ["a", "d"]
    assert [entry[1] for entry in log if entry[0] == "end"][-1] == "a"
    assert [o.item for o in outcomes] == ["a", "b", "c", "d"]  # the items' order, not the ends'
    assert [o.result for o in outcomes] == ["A", "B", "C", "D"]
    assert all(o.ended >= o.started for o in outcomes)


def test_one_at_a_time_never_overlaps():
    _, log, peak = _run({"a": 3, "b": 2, "c": 1}, parallel=1)
    assert peak == 1
    assert [e[:2] for e in log] == [
        ("start", "a"),
        ("end", "a"),
        ("start", "b"),
        ("end", "b"),
        ("start", "c"),
        ("end", "c"),
    ]


def test_a_failure_is_kept_in_its_outcome_and_the_other_items_still_run():
    outcomes, log, _ = _run({"a": 2, "b": 1, "c": 1}, parallel=2, fail={"b": ValueError})
    assert [o.error is None for o in outcomes] == [True, False, True]
    assert isinstance(outcomes[1].error, ValueError) and "b broke" in str(outcomes[1].error)
    assert ("start", "c") in [e[:2] for e in log]


def test_a_fatal_error_stops_the_pool_at_once():
    with pytest.raises(KeyboardInterrupt):
        _run(
            {"a": 5, "b": 1, "c": 1},
            parallel=2,
            fail={"b": KeyboardInterrupt},
            fatal=(KeyboardInterrupt,),
        )


def test_a_stop_starts_nothing_more_and_waits_for_the_running_items():
    outcomes, log, _ = _run({"a": 3, "b": 5, "c": 1, "d": 1}, parallel=2, stop_after=2)
    assert [e[:2] for e in log if e[0] == "start"] == [("start", "a"), ("start", "b")]
    assert [o.begun for o in outcomes] == [True, True, False, False]
    assert [o.result for o in outcomes] == ["A", "B", None, None]  # a and b ran to the end
    assert span(outcomes) == pytest.approx(outcomes[1].ended - outcomes[0].started)


def test_parallel_below_one_is_refused():
    with pytest.raises(ValueError, match="parallel must be >= 1, got 0"):
        run_pool(["a"], 0, lambda item: None, lambda job: None)


def test_span_runs_from_the_first_start_to_the_last_end():
    outcomes = [
        Outcome("a", started=1.0, ended=4.0, begun=True),
        Outcome("b", started=2.0, ended=7.5, begun=True),
        Outcome("c"),  # never started: no part of the span
    ]
    assert span(outcomes) == pytest.approx(6.5)
    assert sum(o.seconds for o in outcomes) == pytest.approx(8.5)  # more than the span
    assert span([]) == 0.0 and span(outcomes[2:]) == 0.0
