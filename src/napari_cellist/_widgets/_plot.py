"""A small live loss / score plot (matplotlib in Qt)."""

from __future__ import annotations

from typing import Any

from magicgui.widgets import Container


class LivePlot(Container):
    """Plots ``loss`` per step; updated from the GUI thread as progress arrives."""

    def __init__(self, ylabel: str = "loss") -> None:
        super().__init__(labels=False)
        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
        from matplotlib.figure import Figure

        self.figure = Figure(figsize=(3.2, 2.0), tight_layout=True)
        self.axes = self.figure.add_subplot(111)
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setMinimumHeight(150)
        self.native.layout().addWidget(self.canvas)
        self.xlabel = "step"
        self.ylabel = ylabel
        self.steps: list[int] = []
        self.values: list[float] = []
        self.clear()

    def set_labels(self, xlabel: str, ylabel: str) -> None:
        """Name the axes (what the model reports as ``loss`` per step)."""
        self.xlabel, self.ylabel = xlabel, ylabel
        self._draw(now=True)

    def clear(self) -> None:
        """Forget all points."""
        self.steps, self.values = [], []
        self._draw(now=True)

    def add(self, step: int, value: Any) -> None:
        """Add one point (ignored when ``value`` is None)."""
        if value is None:
            return
        self.steps.append(step)
        self.values.append(float(value))
        self._draw()

    def _draw(self, now: bool = False) -> None:
        """Redraw; ``now`` draws at once rather than at Qt's next idle moment (a widget closed
        in between would leave matplotlib a deleted canvas to draw on)."""
        self.axes.clear()
        self.axes.set_xlabel(self.xlabel)
        self.axes.set_ylabel(self.ylabel)
        if self.steps:
            self.axes.plot(self.steps, self.values, "-", color="tab:orange")
        if now:
            self.canvas.draw()
        else:
            self.canvas.draw_idle()
