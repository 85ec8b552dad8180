"""Predict page: drawn by :mod:`ui.predict`."""

from ui.predict import render

render()
