"""`python -m stack ...` runs the stack CLI group on its own."""

from __future__ import annotations

from stack.cli import stack

if __name__ == "__main__":
    stack(prog_name="python -m stack")
