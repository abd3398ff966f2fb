"""`python -m dfer_edge ...`: the same as the `dfer-edge` command."""

from .cli import main

if __name__ == "__main__":
    main()
