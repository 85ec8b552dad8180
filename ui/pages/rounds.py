"""Rounds page: drawn by :mod:`ui.rounds`."""

from ui.rounds import render

render()
