from agenthub.cli import main

main()
