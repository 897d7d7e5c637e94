"""`python -m search_api.cli`: the `moocsearch` command, as the service's build runner starts it."""

from search_api.cli import main

main()
