"""Import page: drawn by :mod:`ui.catalogue`."""

from ui.catalogue import render

render()
