"""Review page: drawn by :mod:`ui.review`."""

from ui.review import render

render()
