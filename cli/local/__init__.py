"""Local rehearsal: emulated inference servers behind a real nginx on 127.0.0.1."""
