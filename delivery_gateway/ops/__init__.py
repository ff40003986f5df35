"""Running the gateway as an operator sees it: the start-up banner and its warnings, logging, the process runner.

Sits between the command line and the app factory: never holds request logic, and never reads settings itself
(it is handed a `Settings`), except for checking the environment they were read from for misspelt names.
"""
