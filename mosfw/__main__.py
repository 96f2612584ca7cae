"""``python -m mosfw`` = the ``mosfw`` command."""

from mosfw.cli import main

if __name__ == "__main__":
    main()
