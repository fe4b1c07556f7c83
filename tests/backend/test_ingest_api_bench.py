"""The ingest-under-load bench itself works: `bishop up` started and ended, both users' traffic
measured, a hostile material fed through the API to its outcome.

The real runs are benches, out of CI: see docs/performance.md."""

import psutil

from bench.ingest_api import Options, run


async def test_one_short_round_measures_both_phases_and_ends_bishop_up() -> None:
    options = Options(
        rounds=1,
        phase_seconds=2.0,
        budget=120.0,
        text_bytes=100_000,
        materials=["every shape at once"],
        tokens=8,
        warm_replies=1,
    )
    result = await run(options, say=lambda _: None)
    assert not result["stopped"]
    idle, busy = result["phases"]
    assert (idle["kind"], busy["kind"]) == ("idle", "busy")
    for phase in (idle, busy):
        assert phase["api"] and not phase["api_errors"], phase
        assert phase["send"], phase
    assert busy["materials"] and {m["outcome"] for m in busy["materials"]} == {"processed"}
    assert not psutil.pid_exists(result["bishop_up_pid"])
