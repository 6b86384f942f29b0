"""Nothing else writes into the live display: what agents print, warn or log during a run with a
live progress display comes out above it, once, on lines of its own. (Run in a fresh
interpreter: pytest captures warnings and logs itself.)"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

SCRIPT = """
import io, logging, sys, warnings
from rich.console import Console
import fanfold as ff
from fanfold._progress import ProgressDisplay

warnings.simplefilter("always")

async def chatty(x):
    print(f"printed by row {x}")
    warnings.warn(f"warned by row {x}", UserWarning, stacklevel=1)
    logging.getLogger("some.library").warning("logged by row %d", x)
    return x

screen = io.StringIO()
console = Console(file=screen, force_terminal=True, width=400, highlight=False)
display = ProgressDisplay(console=console, total=3, live=True)
real = (sys.stdout, sys.stderr)
display.start()
try:
    result = ff.run_sync(ff.map(chatty), range(3), on_event=display)
finally:
    display.stop()
assert (sys.stdout, sys.stderr) == real, "the display gives the streams back"
assert result.output == [0, 1, 2]
with open(sys.argv[1], "w") as out:
    out.write(screen.getvalue())
"""


def test_prints_warnings_and_logs_go_above_the_live_display(tmp_path: Path) -> None:
    script, screen = tmp_path / "chatty.py", tmp_path / "screen.txt"
    script.write_text(SCRIPT)
    done = subprocess.run([sys.executable, "-W", "always", str(script), str(screen)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen.read_text()).replace("\r", "\n")
    for x in range(3):
        for what in ("printed", "warned", "logged"):
            line = f"{what} by row {x}"
            assert text.count(line) == 1, (line, text)
            start = text.index(line)  # on a line of its own: nothing of the bar before it
            before = text[text.rfind("\n", 0, start) + 1 : start]
            assert "fanfold" not in before, repr(before)
            assert "/3" not in before, repr(before)
    assert "warned by row" not in done.stderr
    assert "logged by row" not in done.stderr
