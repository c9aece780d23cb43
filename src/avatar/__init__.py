"""avatar: speech in, a talking video of a person out.

The public Python API is re-exported lazily from :mod:`avatar.api` so that
``import avatar`` stays cheap (no model loading at import time).
"""

__version__ = "0.1.0"

__all__ = ["speak", "load_speech", "load_portrait", "AvatarError", "__version__"]


def __getattr__(name):
    if name in ("speak", "load_speech", "load_portrait"):
        from avatar import api

        return getattr(api, name)
    if name == "AvatarError":
        from avatar.errors import AvatarError

        return AvatarError
    raise AttributeError(f"module 'avatar' has no attribute {name!r}")
