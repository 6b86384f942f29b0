"""Split a 10,000-row data set by a field the leader chooses, analyse the parts at once, merge.

The sales are written to a JSONL file and handed to the team by path. The leader (an ``ff.llm``
agent) never reads the rows: its prompt describes the file (10,000 rows, each field with its
type and number of distinct values, three sample rows), and it answers with a plan that groups
the rows by the field it picks. fanfold executes the split in code, runs the ``analyst`` member
(a plain function: members need not be LLM agents) once per group, all at once, and the
``combine`` member merges the group summaries into one report.

It runs offline on fanfold's simulated provider. The scripted leader reads the data description
in its prompt and picks the field with the fewest distinct values.

    .venv/bin/python examples/team_split_dataset.py
"""

from __future__ import annotations

import json
import random
import re
import tempfile
from pathlib import Path
from typing import Any

import fanfold as ff
from fanfold.testing import Latency, SimRequest, SimulatedProvider

MODEL = "openai-chat:sim-1"
ROWS = 10_000
REGIONS = ["north", "south", "east", "west", "central"]


def write_sales(path: Path, rows: int = ROWS, seed: int = 7) -> Path:
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8") as out:
        for i in range(rows):
            row = {"order": i, "region": rng.choice(REGIONS), "product": f"p{rng.randrange(40):02d}",
                   "units": rng.randint(1, 20), "price": round(rng.uniform(2, 50), 2)}  # fmt: skip
            out.write(json.dumps(row) + "\n")
    return path


def answer(request: SimRequest) -> dict[str, Any]:
    """The simulated leader: group by the field with the fewest distinct values (but two or more)."""
    prompt = request.last_user_text
    counts = {name: int(n) for name, n in re.findall(r"(\w+) \(\w+(?: \| \w+)*; (\d+)\+? distinct", prompt)}
    field = min((n, name) for name, n in counts.items() if n >= 2)[1]
    analyse = {"id": "analyse", "member": "analyst", "instruction": "Summarize the sales of this group.",
               "split": {"by": "group_by", "field": field}}  # fmt: skip
    return {"subtasks": [analyse], "merge": "combine"}


async def analyst(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Summarizes a group of sales rows: its revenue, units and best-selling product."""
    by_product: dict[str, float] = {}
    for row in rows:
        by_product[row["product"]] = by_product.get(row["product"], 0.0) + row["units"] * row["price"]
    revenue = sum(by_product.values())
    return {"region": rows[0]["region"], "orders": len(rows), "revenue": round(revenue, 2),
            "top_product": max(by_product, key=by_product.__getitem__)}  # fmt: skip


async def combine(summaries: list[dict[str, Any]]) -> dict[str, Any]:
    """Merges group summaries into one report, largest revenue first."""
    ranked = sorted(summaries, key=lambda s: -s["revenue"])
    return {"orders": sum(s["orders"] for s in summaries), "revenue": round(sum(s["revenue"] for s in summaries), 2),
            "groups": ranked}  # fmt: skip


def main(latency: Latency | None = None, verbose: bool = True, rows: int = ROWS) -> ff.Result[ff.TeamResult[Any]]:
    sim = SimulatedProvider(answer=answer, latency=latency or Latency.fixed(0.3))
    with tempfile.TemporaryDirectory() as folder, sim.in_thread():
        sales = write_sales(Path(folder) / "sales.jsonl", rows)
        leader = ff.llm(MODEL, name="leader", base_url=sim.openai_base_url, api_key="sim",
                        instructions="You lead a team of analysts.")  # fmt: skip
        team = ff.team(leader, [analyst, combine])
        result = ff.run_sync(team, ff.Brief("Report the sales by the most useful grouping.", sales))
        prompt_tokens = sim.stats.input_tokens
        size = sales.stat().st_size
    if verbose:
        show(result, prompt_tokens, size)
    return result


def show(result: ff.Result[ff.TeamResult[Any]], prompt_tokens: int, size: int) -> None:
    team = result.output
    assert team is not None
    assert team.plan is not None
    split = team.plan.subtasks[0].split
    assert split is not None
    print(f"the leader was sent {prompt_tokens:,} tokens about a {size / 1e6:.1f} MB file, and chose to group "
          f"by {split.field!r}: {len(team.results)} groups, one analyst run each")  # fmt: skip
    report = team.answer
    print(f"\n{report['orders']:,} orders, revenue {report['revenue']:,.2f}")
    for group in report["groups"]:
        print(f"  {group['region']:<8} {group['orders']:>6,} orders  {group['revenue']:>12,.2f}  "
              f"top product {group['top_product']}")  # fmt: skip
    print(f"\nsummary: {result.summary}")


if __name__ == "__main__":
    main()
