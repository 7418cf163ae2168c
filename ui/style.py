"""The app's look: one light, quiet palette, large type, one accent colour.

Class colours come from `appliance.overlay`, so the screen, the overlays and the
PDF reports show each class in the same colour.
"""

from __future__ import annotations

from PyQt6.QtGui import QColor, QFont

from ui.model import Level

ACCENT = "#1f6feb"
INK = "#1d2430"
MUTED = "#5b6678"
LINE = "#d5dae3"
PANEL = "#ffffff"
GROUND = "#eef1f5"

#: Text and background colours of each status level.
LEVEL_COLOURS: dict[Level, tuple[str, str]] = {
    "ok": ("#14532d", "#dcfce7"),
    "busy": ("#1e3a8a", "#dbeafe"),
    "warning": ("#713f12", "#fef3c7"),
    "error": ("#7f1d1d", "#fee2e2"),
}

STYLE_SHEET = f"""
QWidget {{ color: {INK}; font-size: 15px; }}
QMainWindow, QWidget#screen {{ background: {GROUND}; }}
QFrame#panel {{ background: {PANEL}; border: 1px solid {LINE}; border-radius: 8px; }}
QLabel#panelTitle {{ font-size: 13px; font-weight: 600; color: {MUTED};
    text-transform: uppercase; letter-spacing: 1px; }}
QLabel#fieldError {{ color: #b91c1c; font-size: 13px; }}
QLabel#bigFigure {{ font-size: 44px; font-weight: 700; }}
QLabel#bigFigure[empty="true"] {{ font-size: 22px; font-weight: 600; color: {MUTED}; }}
QLabel#crop {{ background: #f3f4f6; color: {MUTED}; border-radius: 6px; }}
QLabel#crop[filled="true"] {{ background: #111827; }}
QLabel#figureNote {{ color: {MUTED}; font-size: 15px; }}
QLabel#banner {{ background: {LEVEL_COLOURS["error"][1]};
    color: {LEVEL_COLOURS["error"][0]}; border-radius: 6px; padding: 8px 10px; }}
QLabel#warnings {{ background: {LEVEL_COLOURS["warning"][1]};
    color: {LEVEL_COLOURS["warning"][0]}; border-radius: 6px; padding: 8px 10px; }}
QLineEdit, QComboBox, QDateEdit {{ font-size: 18px; padding: 6px 8px;
    border: 1px solid {LINE}; border-radius: 6px; background: white;
    min-height: 28px; }}
QLineEdit[invalid="true"] {{ border: 2px solid #dc2626; background: #fff5f5; }}
QPushButton {{ font-size: 16px; padding: 8px 16px; border-radius: 6px;
    border: 1px solid {LINE}; background: white; }}
QPushButton:hover {{ border-color: {ACCENT}; }}
QPushButton:disabled {{ color: #9aa3b2; background: #f3f4f6; }}
QPushButton#capture {{ font-size: 24px; font-weight: 700; color: white;
    background: {ACCENT}; border: none; min-height: 64px; }}
QPushButton#capture:disabled {{ background: #9db8e8; color: #eef3fb; }}
QPushButton#accept {{ font-size: 18px; font-weight: 600; color: white;
    background: #15803d; border: none; min-height: 48px; }}
QPushButton#accept:disabled {{ background: #b7d9c2; color: #eef7f1; }}
QPushButton#discard {{ font-size: 18px; min-height: 48px; }}
QTabWidget::pane {{ border: none; }}
QTabBar::tab {{ font-size: 17px; font-weight: 600; padding: 10px 28px;
    color: {MUTED}; border: none; }}
QTabBar::tab:selected {{ color: {INK}; border-bottom: 3px solid {ACCENT}; }}
QTableWidget {{ background: white; border: 1px solid {LINE}; font-size: 15px;
    gridline-color: #edf0f4; }}
QHeaderView::section {{ background: #f6f7f9; border: none;
    border-bottom: 1px solid {LINE}; padding: 6px; font-weight: 600; }}
QProgressBar {{ border: 1px solid {LINE}; border-radius: 6px; height: 22px;
    text-align: center; background: white; }}
QProgressBar::chunk {{ background: {ACCENT}; border-radius: 5px; }}
QStatusBar {{ background: white; border-top: 1px solid {LINE}; }}
"""


def qcolour(rgb: tuple[int, int, int]) -> QColor:
    """Return an RGB triple as a `QColor`."""
    return QColor(*rgb)


def hex_colour(rgb: tuple[int, int, int]) -> str:
    """Return an RGB triple as ``#rrggbb`` for a style sheet."""
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def app_font() -> QFont:
    """Return the app's base font."""
    font = QFont()
    font.setPointSizeF(11.5)
    return font
