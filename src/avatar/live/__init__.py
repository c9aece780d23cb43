"""Live streaming: sessions that speak as text or audio arrives (avatar serve, avatar.live.client)."""
