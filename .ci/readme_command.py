"""Print the command of the fenced ``bash`` block under a README.md heading, so CI runs exactly what the README says.

    python3 .ci/readme_command.py "Install and launch"

The block must be the first fenced block after the heading and hold one command (backslash continuations joined);
anything else exits 1 with one line saying what was found, so a README edit cannot silently change what CI runs.
"""

import re
import sys
from pathlib import Path


def readme_command(readme: str, heading: str) -> str:
    """The one command of the first ```bash block between ``## heading`` and the next ``## `` heading."""
    section = re.search(rf"^## {re.escape(heading)}[ \t]*\n(.*?)(?=^## |\Z)", readme, re.MULTILINE | re.DOTALL)
    if section is None:
        raise ValueError(f'README.md has no "## {heading}" heading')
    block = re.search(r"^```(\w*)[ \t]*\n(.*?)^```", section.group(1), re.MULTILINE | re.DOTALL)
    if block is None or block.group(1) != "bash":
        raise ValueError(f'the first fenced block under "## {heading}" is not a ```bash block')
    text = block.group(2).replace("\\\n", " ")
    commands = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    if len(commands) != 1:
        raise ValueError(f'the bash block under "## {heading}" holds {len(commands)} commands, expected one')
    return commands[0]


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python3 .ci/readme_command.py HEADING")
    try:
        print(readme_command((Path(__file__).resolve().parent.parent / "README.md").read_text("utf-8"), sys.argv[1]))
    except (OSError, ValueError) as exc:
        sys.exit(f"readme_command: {exc}")
