from inferfleet.cli.main import main

main()
