"""`python -m routerllm ...`: the same as the `routerllm` command."""

from routerllm.cli import main

if __name__ == "__main__":
    main()
