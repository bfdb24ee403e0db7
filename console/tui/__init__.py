"""The full-screen console (Textual). Widgets render state and post intents; the session
(owner or attached) does the work."""
