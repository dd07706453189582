"""Speech engines behind one protocol."""
