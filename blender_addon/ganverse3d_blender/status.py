"""The add-on's status lines: what the last backend check, the last import and the Neural Preview said.

They live on the window manager (per session: neither saved nor undone). Each line has a ``<line>_failed``
flag, so that errors are drawn as errors and a changed preference can clear a stale one. Lines are drawn
wrapped to the region's width, since Blender cuts a long label in the middle. Every change redraws the areas
that show the lines, in every window: a region redraws only when tagged (or when the mouse moves over it), so
without this the Import / Check Backend buttons would stay greyed after a run.
"""

import textwrap

import bpy

# Average width of a character of Blender's UI font at UI scale 1 (measured with blf: 5.3 px in Blender 3.4,
# 5.7 px in 5.0), and what a panel's margins and a label's icon take from a region's width (pixels). The
# estimate errs towards short lines: a short line is harmless, a cut one is not.
_CHAR_WIDTH_PX = 6
_MARGINS_PX = 60
_MIN_CHARS_PER_LINE = 20
_CHARS_PER_LINE_WITHOUT_REGION = 60  # drawn outside any region (e.g. by a test)
_AREAS_SHOWING_STATUS = ("VIEW_3D", "PREFERENCES")


class GANVERSE3D_PG_status(bpy.types.PropertyGroup):
    """Per-session status lines, each with a flag saying whether it is an error."""

    backend: bpy.props.StringProperty(name="Backend", description="Result of the last backend check")
    backend_failed: bpy.props.BoolProperty(name="Backend Check Failed")
    import_status: bpy.props.StringProperty(name="Status", description="Progress, result or error of the last import")
    import_status_failed: bpy.props.BoolProperty(name="Import Failed")
    preview_status: bpy.props.StringProperty(name="Preview Status", description="What the Neural Preview shows, or "
                                                                               "why it stopped")
    preview_status_failed: bpy.props.BoolProperty(name="Neural Preview Failed")


def show(context, line: str, text: str, failed: bool = False) -> None:
    """Set the status ``line`` ("backend", "import_status" or "preview_status") and redraw where it is shown."""
    status = context.window_manager.ganverse3d
    setattr(status, line, text)
    setattr(status, f"{line}_failed", failed)
    redraw(context)


def failed(context, line: str) -> bool:
    return getattr(context.window_manager.ganverse3d, f"{line}_failed")


def redraw(context) -> None:
    """Tag every area that shows the add-on's buttons or status lines, in every window, for a redraw."""
    for window in context.window_manager.windows:
        for area in window.screen.areas:
            if area.type in _AREAS_SHOWING_STATUS:
                area.tag_redraw()


def chars_per_line(region_width_px: int, ui_scale: float) -> int:
    """How many characters of a status line fit in a region ``region_width_px`` wide."""
    usable = region_width_px - _MARGINS_PX * ui_scale
    return max(_MIN_CHARS_PER_LINE, int(usable / (_CHAR_WIDTH_PX * ui_scale)))


def draw(layout, context, line: str) -> None:
    """Draw the status ``line`` under ``layout``, wrapped to the region's width; an error gets the error icon."""
    text = getattr(context.window_manager.ganverse3d, line)
    if not text:
        return
    region = context.region
    ui_scale = context.preferences.system.ui_scale or 1.0  # 0 without a display (background mode)
    width = chars_per_line(region.width, ui_scale) if region is not None else _CHARS_PER_LINE_WITHOUT_REGION
    icon = "ERROR" if failed(context, line) else "INFO"
    column = layout.column(align=True)
    for index, part in enumerate(textwrap.wrap(text, width)):
        column.label(text=part, icon=icon if index == 0 else "BLANK1")
