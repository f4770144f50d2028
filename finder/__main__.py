from finder.show.cli import main

main()
