"""The scrubber: secret values and their encoded forms replaced by placeholders, in a
stream (`secrets run`, `secrets redact`) or a whole text (scry answers, in the server)."""
