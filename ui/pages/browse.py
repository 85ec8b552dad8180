"""Browse page: drawn by :mod:`ui.browse`."""

from ui.browse import render

render()
