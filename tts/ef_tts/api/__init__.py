"""HTTP routes of ef_tts, one module per surface: Coqui server API, OpenAI speech, health."""
