"""Small display widgets: an image pane, probability bars, a status chip, panels."""

from __future__ import annotations

from PyQt6.QtCore import QPointF, QRectF, QSize, Qt, pyqtSignal
from PyQt6.QtGui import QColor, QImage, QMouseEvent, QPainter, QPaintEvent, QPen
from PyQt6.QtWidgets import QFrame, QLabel, QSizePolicy, QVBoxLayout, QWidget

from ui.model import StatusItem
from ui.style import LEVEL_COLOURS, LINE, MUTED, hex_colour


def panel(title: str | None = None) -> tuple[QFrame, QVBoxLayout]:
    """Return a white rounded panel and its layout, with an optional title."""
    frame = QFrame()
    frame.setObjectName("panel")
    layout = QVBoxLayout(frame)
    layout.setContentsMargins(14, 12, 14, 12)
    layout.setSpacing(8)
    if title:
        label = QLabel(title)
        label.setObjectName("panelTitle")
        layout.addWidget(label)
    return frame, layout


class ImageView(QWidget):
    """An image scaled to fit, with a caption; reports clicks as fractions.

    ``clicked(fx, fy)`` gives the click as a fraction of the image's width and
    height, so the receiver need not know how large the image was drawn.
    """

    clicked = pyqtSignal(float, float)

    def __init__(self, caption: str, placeholder: str = "No image") -> None:
        super().__init__()
        self.caption = caption
        self.placeholder = placeholder
        self._image: QImage | None = None
        self._box: tuple[float, float, float, float] | None = None
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(320, 280)
        self.setCursor(Qt.CursorShape.CrossCursor)

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt's name
        """Prefer the sensor's aspect at a comfortable size."""
        return QSize(600, 520)

    def set_image(self, image: QImage | None, caption: str | None = None) -> None:
        """Show `image` (None for the placeholder); clear the highlight."""
        self._image = image
        self._box = None
        if caption is not None:
            self.caption = caption
        self.update()

    def set_highlight(self, box: tuple[float, float, float, float] | None) -> None:
        """Frame one seed: ``(x, y, w, h)`` as fractions of the image."""
        self._box = box
        self.update()

    def has_image(self) -> bool:
        """Whether an image is shown."""
        return self._image is not None

    def _image_rect(self) -> QRectF:
        area = QRectF(self.rect()).adjusted(0, 30, 0, 0)
        if self._image is None:
            return area
        w, h = self._image.width(), self._image.height()
        scale = min(area.width() / w, area.height() / h)
        size_w, size_h = w * scale, h * scale
        return QRectF(
            area.x() + (area.width() - size_w) / 2,
            area.y() + (area.height() - size_h) / 2,
            size_w,
            size_h,
        )

    def paintEvent(self, event: QPaintEvent | None) -> None:  # noqa: N802
        """Draw the caption, the image (or placeholder) and the highlight."""
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        font = painter.font()
        font.setPixelSize(15)
        font.setBold(True)
        painter.setFont(font)
        painter.setPen(QColor(MUTED))
        target = self._image_rect()
        painter.drawText(
            QRectF(target.x(), target.y() - 30, target.width(), 26),
            Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
            self.caption,
        )
        if self._image is None:
            painter.setPen(QPen(QColor(LINE), 2, Qt.PenStyle.DashLine))
            painter.drawRoundedRect(target.adjusted(2, 2, -2, -2), 8, 8)
            painter.setPen(QColor(MUTED))
            font.setBold(False)
            painter.setFont(font)
            painter.drawText(target, Qt.AlignmentFlag.AlignCenter, self.placeholder)
            return
        painter.drawImage(target, self._image)
        if self._box is not None:
            x, y, w, h = self._box
            pad = 6.0
            rect = QRectF(
                target.x() + x * target.width() - pad,
                target.y() + y * target.height() - pad,
                w * target.width() + 2 * pad,
                h * target.height() + 2 * pad,
            )
            painter.setPen(QPen(QColor("#ffffff"), 5))
            painter.drawRoundedRect(rect, 4, 4)
            painter.setPen(QPen(QColor("#111827"), 2))
            painter.drawRoundedRect(rect, 4, 4)

    def click_at(self, point: QPointF) -> None:
        """Report a click at widget coordinates `point` if it hits the image."""
        if self._image is None:
            return
        target = self._image_rect()
        if not target.contains(point):
            return
        self.clicked.emit(
            (point.x() - target.x()) / target.width(),
            (point.y() - target.y()) / target.height(),
        )

    def mousePressEvent(self, event: QMouseEvent | None) -> None:  # noqa: N802
        """Forward a left click on the image."""
        if event is not None and event.button() == Qt.MouseButton.LeftButton:
            self.click_at(event.position())

    def point_of(self, fx: float, fy: float) -> QPointF:
        """Return widget coordinates of the image point ``(fx, fy)`` (fractions)."""
        target = self._image_rect()
        return QPointF(
            target.x() + fx * target.width(), target.y() + fy * target.height()
        )


class ProbabilityBars(QWidget):
    """Horizontal bars of class probabilities, each in its class colour."""

    def __init__(self) -> None:
        super().__init__()
        self._rows: list[tuple[str, float, tuple[int, int, int]]] = []
        self.setMinimumHeight(24)

    def set_probabilities(
        self,
        probabilities: dict[str, float] | None,
        colours: dict[str, tuple[int, int, int]],
    ) -> None:
        """Show one bar per class, largest first (None clears)."""
        rows = sorted((probabilities or {}).items(), key=lambda kv: -kv[1])
        self._rows = [(name, p, colours.get(name, (90, 90, 90))) for name, p in rows]
        self.setMinimumHeight(max(24, 24 * len(self._rows)))
        self.updateGeometry()
        self.update()

    def paintEvent(self, event: QPaintEvent | None) -> None:  # noqa: N802
        """Draw the bars."""
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        font = painter.font()
        font.setPixelSize(14)
        painter.setFont(font)
        label_w, value_w = 110.0, 56.0
        bar_w = max(self.width() - label_w - value_w, 10)
        for i, (name, p, rgb) in enumerate(self._rows):
            y = 24.0 * i
            painter.setPen(QColor("#1d2430"))
            painter.drawText(
                QRectF(0, y, label_w - 6, 22),
                Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft,
                name,
            )
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(QColor("#edf0f4"))
            painter.drawRoundedRect(QRectF(label_w, y + 5, bar_w, 12), 4, 4)
            painter.setBrush(QColor(hex_colour(rgb)))
            painter.drawRoundedRect(QRectF(label_w, y + 5, bar_w * p, 12), 4, 4)
            painter.setPen(QColor("#1d2430"))
            painter.drawText(
                QRectF(label_w + bar_w, y, value_w, 22),
                Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignRight,
                f"{100 * p:.0f}%",
            )


class StatusChip(QLabel):
    """One field of the status bar, coloured by its level; advice as tooltip."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name
        self.item = StatusItem(f"{name}: ...", "busy")
        self.show_item(self.item)

    def show_item(self, item: StatusItem) -> None:
        """Show a new state."""
        self.item = item
        fg, bg = LEVEL_COLOURS[item.level]
        self.setText(f"<b>{self.name}</b>&nbsp; {item.text}")
        self.setToolTip(item.advice or item.text)
        self.setStyleSheet(
            f"QLabel {{ color: {fg}; background: {bg}; border-radius: 10px; "
            "padding: 3px 10px; font-size: 14px; }"
        )
