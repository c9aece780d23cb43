"""Speech in: decoding, TTS, features at the video frame rate, voice activity, phone timings."""
