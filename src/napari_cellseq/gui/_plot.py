"""A tiny line plot of the training loss (and validation SEG), painted with QPainter.

No plotting dependency: napari depends on neither matplotlib nor pyqtgraph.
"""

from __future__ import annotations

import math

from qtpy.QtCore import QPointF, QRectF, Qt
from qtpy.QtGui import QColor, QPainter, QPainterPath, QPen
from qtpy.QtWidgets import QSizePolicy, QWidget

__all__ = ["LossPlot"]

_MARGIN_L, _MARGIN_R, _MARGIN_T, _MARGIN_B = 44, 34, 8, 18


class LossPlot(QWidget):
    """Loss per iteration (grey), its running mean (orange) and validation SEG (green dots, 0-1).

    Call :meth:`add_loss` per step and :meth:`add_validation` per validation; :meth:`clear`
    before a new run. Repaints are coalesced by Qt, so many points per second are cheap.
    """

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setMinimumHeight(120)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.losses: list[tuple[int, float]] = []
        self.smooth: list[float] = []
        self.validation: list[tuple[int, float]] = []

    def clear(self) -> None:
        """Forget all points."""
        self.losses.clear()
        self.smooth.clear()
        self.validation.clear()
        self.update()

    def add_loss(self, iteration: int, loss: float) -> None:
        """Append one training loss."""
        if not math.isfinite(loss):
            return
        self.losses.append((iteration, loss))
        prev = self.smooth[-1] if self.smooth else loss
        self.smooth.append(0.9 * prev + 0.1 * loss)  # exponential running mean
        self.update()

    def add_validation(self, iteration: int, seg: float) -> None:
        """Append one validation SEG score (0-1)."""
        if math.isfinite(seg):
            self.validation.append((iteration, seg))
            self.update()

    def paintEvent(self, _event) -> None:  # noqa: N802 - Qt override
        """Draw axes, loss curves and validation dots."""
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        fg = self.palette().color(self.foregroundRole())
        area = QRectF(_MARGIN_L, _MARGIN_T, max(self.width() - _MARGIN_L - _MARGIN_R, 10),
                      max(self.height() - _MARGIN_T - _MARGIN_B, 10))
        p.setPen(QPen(fg, 1))
        p.drawRect(area)
        if not self.losses:
            p.drawText(area, Qt.AlignmentFlag.AlignCenter, "loss appears here during training")
            p.end()
            return
        first = self.losses[0][0]
        last = max(self.losses[-1][0], first + 1, *(i for i, _ in self.validation))
        values = [v for _, v in self.losses]
        lo, hi = min(values), max(values)
        if hi - lo < 1e-12:
            lo, hi = lo - 0.5, hi + 0.5

        def point(it: float, value: float, vmin: float, vmax: float) -> QPointF:
            x = area.left() + (it - first) / (last - first) * area.width()
            y = area.bottom() - (value - vmin) / (vmax - vmin) * area.height()
            return QPointF(x, y)

        self._polyline(p, [point(i, v, lo, hi) for i, v in self.losses], QColor(150, 150, 150), 1)
        smooth = [(i, s) for (i, _), s in zip(self.losses, self.smooth)]
        self._polyline(p, [point(i, s, lo, hi) for i, s in smooth], QColor(255, 150, 40), 2)
        p.setPen(QPen(QColor(60, 200, 90), 1))
        p.setBrush(QColor(60, 200, 90))
        for i, seg in self.validation:
            p.drawEllipse(point(i, seg, 0.0, 1.0), 3.5, 3.5)
        p.setPen(QPen(fg, 1))
        p.drawText(QRectF(0, area.top() - 2, _MARGIN_L - 4, 14), Qt.AlignmentFlag.AlignRight, f"{hi:.3g}")
        p.drawText(QRectF(0, area.bottom() - 12, _MARGIN_L - 4, 14), Qt.AlignmentFlag.AlignRight, f"{lo:.3g}")
        p.drawText(QRectF(area.left(), area.bottom() + 2, 60, 14), Qt.AlignmentFlag.AlignLeft, str(first))
        p.drawText(QRectF(area.right() - 60, area.bottom() + 2, 60, 14), Qt.AlignmentFlag.AlignRight, str(last))
        p.drawText(QRectF(0, area.center().y() - 7, _MARGIN_L - 4, 14), Qt.AlignmentFlag.AlignRight, "loss")
        if self.validation:
            p.setPen(QPen(QColor(60, 200, 90), 1))
            p.drawText(QRectF(area.right() + 3, area.top() - 2, _MARGIN_R, 14), Qt.AlignmentFlag.AlignLeft, "SEG")
            p.drawText(QRectF(area.right() + 3, area.top() + 12, _MARGIN_R, 14), Qt.AlignmentFlag.AlignLeft, "1")
            p.drawText(QRectF(area.right() + 3, area.bottom() - 12, _MARGIN_R, 14), Qt.AlignmentFlag.AlignLeft, "0")
        p.end()

    @staticmethod
    def _polyline(p: QPainter, points: list[QPointF], color: QColor, width: int) -> None:
        if not points:
            return
        path = QPainterPath(points[0])
        for pt in points[1:]:
            path.lineTo(pt)
        p.setPen(QPen(color, width))
        p.setBrush(Qt.BrushStyle.NoBrush)
        p.drawPath(path)
