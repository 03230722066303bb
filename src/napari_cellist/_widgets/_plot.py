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


class VersionPlot(Container):
    """The validation score of each model version over time: accepted versions as filled
    circles joined by a line (the model the project predicts with, as it improved), versions
    kept back as red crosses.

    ``points`` are :class:`~napari_cellist.learning_loop.VersionPoint` (``created_at``,
    ``score``, ``accepted``); a version without a score is not drawn.
    """

    def __init__(self, ylabel: str = "validation score") -> None:
        super().__init__(labels=False)
        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
        from matplotlib.figure import Figure

        self.figure = Figure(figsize=(3.2, 2.0), tight_layout=True)
        self.axes = self.figure.add_subplot(111)
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setMinimumHeight(150)
        self.native.layout().addWidget(self.canvas)
        self.ylabel = ylabel
        self.points: list[Any] = []
        self._shown: tuple | None = None
        self.show_points([])

    def show_points(self, points: list[Any]) -> None:
        """Draw ``points`` (oldest first), replacing what was drawn; nothing is redrawn when
        they are the ones shown (a redraw costs the GUI thread ~0.1-0.3 s)."""
        from matplotlib.dates import AutoDateLocator, ConciseDateFormatter

        scored = [p for p in points if p.score is not None]
        key = tuple((p.version_id, p.score, p.accepted) for p in scored)
        if key == self._shown:
            return
        self._shown = key
        self.points = scored
        self.axes.clear()
        self.axes.set_xlabel("created")
        self.axes.set_ylabel(self.ylabel)
        accepted = [p for p in self.points if p.accepted]
        rejected = [p for p in self.points if not p.accepted]
        if accepted:
            self.axes.plot(
                [p.created_at for p in accepted],
                [p.score for p in accepted],
                "o-",
                color="tab:green",
                label="accepted",
            )
        if rejected:
            self.axes.plot(
                [p.created_at for p in rejected],
                [p.score for p in rejected],
                "x",
                color="tab:red",
                label="kept back",
                linestyle="none",
            )
        if self.points:
            locator = AutoDateLocator()
            self.axes.xaxis.set_major_locator(locator)
            self.axes.xaxis.set_major_formatter(ConciseDateFormatter(locator))
            self.axes.legend(loc="lower right", fontsize="small")
        self.canvas.draw()

    def drawn(self) -> dict[str, int]:
        """Markers drawn by kind (``accepted``, ``kept back``): what the user sees."""
        return {
            line.get_label(): len(line.get_xdata())
            for line in self.axes.get_lines()
            if not line.get_label().startswith("_")
        }
