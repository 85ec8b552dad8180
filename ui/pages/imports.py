"""Import page: drawn by :mod:`ui.imports`."""

from ui.imports import render

render()
