"""The load bench itself works: a few users on the embedded stack, every reply delivered.

The real runs (100 users) are benches, out of CI: see docs/performance.md."""

from bench.load import Options, run_stack


async def test_a_few_users_get_every_reply_without_errors() -> None:
    result = await run_stack("embedded", "instant", Options(users=3, messages=2, reply_timeout=30))
    assert result["errors"] == {}, result["error_examples"]
    assert (result["sent"], result["replies"], result["lost"]) == (6, 6, 0)
    assert result["ms"]["send"]["n"] == 6 and result["ms"]["time to text"]["n"] == 6
    assert result["peak_rss_mib"]["backend"] > 0
