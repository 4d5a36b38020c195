"""export entry point: not implemented yet."""
import sys

if __name__ == "__main__":
    print("error: export.py is not implemented yet", file=sys.stderr)
    sys.exit(2)
