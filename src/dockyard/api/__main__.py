from dockyard.api.server import main

main()
