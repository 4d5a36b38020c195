"""Helpers shared by the tests; REPO_ROOT is the repository's top folder."""
import os

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
