"""probe: an Internet censorship measurement probe."""

__version__ = "0.1.0"
