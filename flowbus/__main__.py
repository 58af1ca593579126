from flowbus.cli import main

main()
