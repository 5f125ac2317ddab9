"""Development-time tools (code generators); never imported by the running gateway."""
