"""``avatar serve``: the live web server (page, WebSocket and WebRTC) over avatar.live."""
