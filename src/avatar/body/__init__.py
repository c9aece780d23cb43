"""Body tracking and joint motion features for gesture video (TANGO §3.1, App. A.3).

Import submodules directly (``avatar.body.tracker`` loads MediaPipe lazily, on first use).
"""
