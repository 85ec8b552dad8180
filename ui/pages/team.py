"""Team page: drawn by :mod:`ui.team`."""

from ui.team import render

render()
