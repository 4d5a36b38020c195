"""Small shared pieces: config, device policy, errors, atomic files, checkpoint files, MINDIR shape."""
