"""Renderers: MotionFrame -> pixels. ``WarpRenderer`` deforms a photo by the face mesh."""
