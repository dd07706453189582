"""Shared by ef_backend and ef_tts: logging and tracing set-up, so both services look alike."""
