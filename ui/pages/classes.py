"""Classes page: drawn by :mod:`ui.classes`."""

from ui.classes import render

render()
