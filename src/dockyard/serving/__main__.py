from dockyard.serving.cli import main

main()
