"""Faces: MediaPipe face mesh tracking, the canonical head frame, the facial-action basis."""
