"""The terminal colour of each verdict (shared by the table and the trajectory view)."""

from __future__ import annotations

VERDICT_STYLES = {
    "contractive": "bold green",
    "stable": "green",
    "marginal": "yellow",
    "hopf": "bold red",
    "neimark-sacker": "red",
    "saddle": "bold red",
    "flip": "red",
    "inconclusive": "bold magenta",
}
